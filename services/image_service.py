"""The base of the services that take images (``clip``, ``bioclip``, ``face``, ``ocr``).

It holds what they are all constructed with — the session factory models are opened with
(:func:`services.runtimes.open_session`, or a test's recording wrapper) and the
:class:`~services.imaging.ImageLimits` payloads are decoded under — and the image mimes their
tasks declare (WebP first, what the Go SDK sends; then JPEG, PNG, AVIF where decodable, and raw
RGB pixels).
"""

from __future__ import annotations

from collections.abc import Callable

from services.api import HostSettings, ServiceSpec
from services.imaging import RGB_TENSOR_MIME, ImageLimits, image_mimes
from services.runtimes import Session, open_session
from services.service import Service

SessionFactory = Callable[..., Session]


class ImageService(Service):
    """A :class:`~services.service.Service` whose tasks take images."""

    def __init__(
        self,
        spec: ServiceSpec,
        settings: HostSettings,
        *,
        session_factory: SessionFactory = open_session,
        image_limits: ImageLimits = ImageLimits(),
    ) -> None:
        super().__init__(spec, settings)
        self._session_factory = session_factory
        self.image_limits = image_limits

    def input_mimes(self) -> tuple[str, ...]:
        """The mimes image tasks declare."""
        return (*image_mimes(), RGB_TENSOR_MIME)

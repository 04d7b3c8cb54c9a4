"""TXT building and the bounded parser for untrusted peer records; instance names; addresses."""

from __future__ import annotations

import pytest

from app.core.cluster.addresses import (
    is_virtual_interface,
    lan_first_addresses,
    publishable_addresses,
    sort_for_dialing,
    zeroconf_interfaces,
)
from app.core.cluster.naming import (
    AUTO_NAME_BYTES,
    auto_instance_name,
    derived_instance_name,
    dns_label,
    host_name,
)
from app.core.cluster.txt import (
    MAX_TXT_BYTES,
    BadTxt,
    build_txt,
    encode_txt,
    parse_txt,
)

NODE_ID = "0123456789abcdef0123456789abcdef"


def _txt(**values: str) -> bytes:
    return encode_txt(values)


def test_build_txt_round_trips_through_the_peer_parser() -> None:
    txt = build_txt(
        node_id=NODE_ID,
        version="0.1.0",
        runtime="onnxrt-cpu",
        services=("clip", "face"),
        state="ready",
        os_name="linux",
    )
    assert list(txt) == ["v", "runtime", "id", "api", "svc", "state", "os"]
    parsed = parse_txt(encode_txt(txt))
    assert parsed.node_id == NODE_ID
    assert parsed.version == "0.1.0" and parsed.runtime == "onnxrt-cpu" and parsed.api == "1"
    assert parsed.services == ("clip", "face") and parsed.state == "ready" and parsed.os == "linux"


def test_build_txt_refuses_to_publish_what_peers_would_reject() -> None:
    with pytest.raises(BadTxt, match="svc"):
        build_txt(node_id=NODE_ID, version="1", runtime="x", services=("Not A Service",), state="ready")


def test_unknown_keys_are_ignored_and_first_duplicate_wins() -> None:
    raw = _txt(id=NODE_ID, future="whatever") + encode_txt({"id": "ffff"})
    parsed = parse_txt(raw)
    assert parsed.node_id == NODE_ID


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (_txt(id="x" * 65), "TXT id="),
        (_txt(id="bad id"), "TXT id="),
        (_txt(v="1.0; rm -rf"), "TXT v="),
        (_txt(svc="clip,BAD"), "svc entry 'BAD'"),
        (_txt(svc=",".join(f"s{i}" for i in range(17))), "at most 16"),
        (_txt(state="x" * 17), "TXT state="),
        (_txt(api="one"), "TXT api="),
        (_txt(runtime="a b"), "TXT runtime="),
        (encode_txt({"k" * 17: "1"}), "keys are 1-16 bytes"),
        (b"\x05id=", "truncated"),
        (b"".join(encode_txt({f"k{i}": "1"}) for i in range(33)), "more than 32 strings"),
        (b"\xffid=" + b"a" * 252 + encode_txt({"x": "y" * 250}) * 5, f"at most {MAX_TXT_BYTES}"),
        (b"\x04v=\xff\xfe", "not UTF-8"),
    ],
)
def test_bad_records_are_rejected_with_the_rule_they_break(raw: bytes, fragment: str) -> None:
    with pytest.raises(BadTxt) as info:
        parse_txt(raw)
    assert fragment in str(info.value)


def test_empty_txt_record_is_valid_but_empty() -> None:
    parsed = parse_txt(b"\x00")
    assert parsed.node_id == "" and parsed.services == ()


def test_auto_instance_name_is_stable_and_fits_a_label() -> None:
    name = auto_instance_name(NODE_ID, "Kitchen-PC.fritz.box")
    assert name == "lumen-kitchen-pc-01234567"
    assert auto_instance_name(NODE_ID, "Kitchen-PC.fritz.box") == name
    long = auto_instance_name(NODE_ID, "x" * 200)
    assert len(long.encode()) <= AUTO_NAME_BYTES and long.endswith("-01234567")
    odd = auto_instance_name(NODE_ID, "Mein Rechner_ü")
    assert odd.startswith("lumen-mein-rechner") and odd.endswith("-01234567")


def test_host_name_is_dns_safe_and_derived_names_fit() -> None:
    assert host_name(NODE_ID, "my box") == "lumen-my-box-01234567.local."
    assert dns_label("  --  ") == "node"
    derived = derived_instance_name("é" * 31, "ocr")
    assert derived.endswith("-ocr") and len(derived.encode()) <= 63


def test_publishable_addresses_follow_the_bind_address() -> None:
    found = ["127.0.0.1", "192.168.1.20", "169.254.3.4", "fe80::1", "2001:db8::5", "::1"]
    assert publishable_addresses("0.0.0.0", found) == ["192.168.1.20"]
    assert publishable_addresses("::", found) == ["192.168.1.20", "2001:db8::5"]
    assert publishable_addresses("192.168.1.20", found) == ["192.168.1.20"]
    assert publishable_addresses("0.0.0.0", found, include_loopback=True) == ["192.168.1.20", "127.0.0.1"]
    # nothing routable: IPv4 link-local, then loopback
    assert publishable_addresses("0.0.0.0", ["127.0.0.1", "169.254.3.4"]) == ["169.254.3.4"]
    assert publishable_addresses("0.0.0.0", ["127.0.0.1"]) == ["127.0.0.1"]
    assert publishable_addresses("0.0.0.0", []) == ["127.0.0.1"]


def test_container_bridges_and_tunnels_are_not_published_next_to_a_lan_address() -> None:
    adapters = [
        ("lo", ["127.0.0.1", "::1"]),
        ("docker0", ["172.17.0.1"]),
        ("br-3f2a9c1d0e4b", ["172.18.0.1"]),
        ("veth1a2b3c", ["fe80::1"]),
        ("tailscale0", ["100.101.102.103"]),
        ("vEthernet (WSL)", ["172.29.16.1"]),
        ("eth0", ["192.168.1.20", "fe80::2"]),
        ("bridge0", ["169.254.40.1"]),  # a Mac's Thunderbolt bridge is a real link
    ]
    found = lan_first_addresses(adapters)
    assert found == ["192.168.1.20", "fe80::2", "169.254.40.1", "127.0.0.1", "::1"]
    assert publishable_addresses("0.0.0.0", found) == ["192.168.1.20"]
    # a machine whose only interface is virtual (a node inside a container, a veth namespace)
    # still publishes it rather than loopback alone
    only_virtual = lan_first_addresses([("lo", ["127.0.0.1"]), ("veth0", ["10.77.0.2"])])
    assert publishable_addresses("0.0.0.0", only_virtual) == ["10.77.0.2"]
    assert not is_virtual_interface("en0") and not is_virtual_interface("wlan0")
    assert is_virtual_interface("virbr0") and is_virtual_interface("utun3") and is_virtual_interface("wg0")


def test_interface_setting_and_dialing_order() -> None:
    from zeroconf import InterfaceChoice

    assert zeroconf_interfaces(("all",)) is InterfaceChoice.All
    assert zeroconf_interfaces(("default",)) is InterfaceChoice.Default
    assert zeroconf_interfaces(("10.0.0.2",)) == ["10.0.0.2"]
    assert sort_for_dialing(["127.0.0.1", "2001:db8::1", "10.0.0.2", "169.254.1.1"]) == [
        "10.0.0.2",
        "2001:db8::1",
        "169.254.1.1",
        "127.0.0.1",
    ]


def test_config_rejects_bad_interface_settings() -> None:
    from app.core.config import ConfigError, build_config

    with pytest.raises(ConfigError, match="must be the only entry"):
        build_config({"node": {"mdns": {"interfaces": ["all", "10.0.0.1"]}}})
    with pytest.raises(ConfigError, match="IPv4 or IPv6 address"):
        build_config({"node": {"mdns": {"interfaces": ["eth0"]}}})
    with pytest.raises(ConfigError, match="node.cluster.expiry_s"):
        build_config({"node": {"cluster": {"expiry_s": 0}}})
    config = build_config({"node": {"mdns": {"interfaces": ["ALL"], "addresses": ["10.0.0.7"]}}})
    assert config.node.mdns.interfaces == ("all",) and config.node.mdns.addresses == ("10.0.0.7",)

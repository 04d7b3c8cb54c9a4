"""The tray app. The only package that imports PySide6 / qasync."""

"""A fixed-size text widget for lines the refresh timer rewrites (status, caption, explanations).

``Static.update`` asks for a new layout every time; these lines have a fixed height, so only a repaint
is needed, and only when the text actually changed.
"""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget


class TextLine(Widget):
    DEFAULT_CSS = """
    TextLine {
        height: 1;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._text = Text()

    def set(self, text: Text) -> None:
        if text != self._text:
            self._text = text
            self.refresh()

    def render(self) -> Text:
        return self._text

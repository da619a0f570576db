"""Time series the dashboard keeps per second of event time: counts (rates) and sampled values."""

from __future__ import annotations

from collections import deque

SERIES_SECONDS = 600


class RateCounter:
    """Counts per whole second of event time; bounded to the last ``seconds`` seconds."""

    __slots__ = ("_buckets", "total")

    def __init__(self, seconds: int = SERIES_SECONDS) -> None:
        self._buckets: deque[list[int]] = deque(maxlen=seconds)
        self.total = 0

    def add(self, at: float, count: int = 1) -> None:
        self.total += count
        second = int(at)
        if self._buckets and self._buckets[-1][0] == second:
            self._buckets[-1][1] += count
        elif not self._buckets or second > self._buckets[-1][0]:
            self._buckets.append([second, count])
        else:  # an out-of-order time: add it to its bucket if we still have it
            for bucket in reversed(self._buckets):
                if bucket[0] == second:
                    bucket[1] += count
                    return
                if bucket[0] < second:
                    return

    @property
    def last_second(self) -> int:
        """The latest whole second anything was counted in (0: never)."""
        return self._buckets[-1][0] if self._buckets else 0

    def series(self, now: float, n: int = 30) -> list[int]:
        """Counts for the ``n`` whole seconds ending with ``now``'s second (oldest first)."""
        end = int(now)
        start = end - n + 1
        out = [0] * n
        for second, count in reversed(self._buckets):
            if second < start:
                break
            if second <= end:
                out[second - start] = count
        return out

    def rate(self, now: float, window: int = 5) -> float:
        """Mean events per second over the last ``window`` complete seconds before ``now``."""
        values = self.series(now - 1, window)
        return sum(values) / window


class SeriesSampler:
    """The last value per whole second (e.g. a cursor's lag); forward-filled when queried."""

    __slots__ = ("_points",)

    def __init__(self, seconds: int = SERIES_SECONDS) -> None:
        self._points: deque[list[float]] = deque(maxlen=seconds)

    def add(self, at: float, value: float) -> None:
        second = int(at)
        if self._points and self._points[-1][0] == second:
            self._points[-1][1] = value
        elif not self._points or second > self._points[-1][0]:
            self._points.append([second, value])

    def series(self, now: float, n: int = 30) -> list[float]:
        end = int(now)
        start = end - n + 1
        window: list[list[float]] = []  # newest first: the points in the window and the one before it
        for point in reversed(self._points):
            if point[0] > end:
                continue
            window.append(point)
            if point[0] < start:
                break
        window.reverse()
        out: list[float] = [0.0] * n
        value = 0.0
        index = 0
        for second in range(start, end + 1):
            while index < len(window) and window[index][0] <= second:
                value = window[index][1]
                index += 1
            out[second - start] = value
        return out

"""What the processes cost: CPU seconds per group over a window, and peak RSS per worker."""

import threading
import time
from collections.abc import Iterable, Mapping

import psutil


def _cpu_seconds(pid: int) -> float:
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return 0.0
    # Reaped children count too: PostgreSQL backends that closed during the window.
    return float(times.user + times.system + times.children_user + times.children_system)


def main_thread_seconds(pid: int) -> float:
    """CPU seconds of a process's main thread: a uvicorn worker's event loop."""
    try:
        for thread in psutil.Process(pid).threads():
            if thread.id == pid:  # on Linux the main thread's id is the process id
                return float(thread.user_time + thread.system_time)
    except psutil.Error:
        pass
    return 0.0


def postgres_pids() -> list[int]:
    """Every PostgreSQL server process on this machine (the server and its backends)."""
    pids = []
    for process in psutil.process_iter(["name"]):
        if process.info["name"] and process.info["name"].startswith("postgres"):
            pids.append(process.pid)
    return pids


def machine_busy_seconds() -> float:
    """CPU seconds all cores have spent on anything but idling, since boot."""
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


class CpuMeter:
    """Measures CPU seconds spent by groups of processes between `start()` and `stop()`."""

    def __init__(self, groups: Mapping[str, Iterable[int]]) -> None:
        self.groups = {name: list(pids) for name, pids in groups.items()}
        self._before: dict[str, float] = {}
        self.seconds: dict[str, float] = {}

    def _snapshot(self) -> dict[str, float]:
        totals = {
            name: sum(_cpu_seconds(pid) for pid in pids) for name, pids in self.groups.items()
        }
        totals["machine"] = machine_busy_seconds()
        return totals

    def start(self) -> None:
        """Take the first reading."""
        self._before = self._snapshot()

    def stop(self) -> dict[str, float]:
        """Take the second reading and return the CPU seconds spent per group in between."""
        after = self._snapshot()
        self.seconds = {name: max(after[name] - self._before[name], 0.0) for name in after}
        ours = sum(value for name, value in self.seconds.items() if name != "machine")
        self.seconds["other processes"] = max(self.seconds["machine"] - ours, 0.0)
        return self.seconds


class QuietGate:
    """Waits, within a total budget, until other work on the machine has calmed down.

    Two cores are easily disturbed: a test suite running beside the benchmark steals the CPU
    it measures. Before each scenario the gate samples how busy the machine is (the
    benchmark itself is idle then) and waits while that exceeds `threshold`.
    """

    def __init__(self, budget_seconds: float, threshold: float = 0.10) -> None:
        self.budget_seconds = budget_seconds
        self.threshold = threshold
        self.waited_seconds = 0.0

    def wait(self, what: str) -> float:
        """Block until the machine is quiet or the budget is spent; return the busy share."""
        busy = psutil.cpu_percent(interval=1.0) / 100
        while busy > self.threshold and self.waited_seconds < self.budget_seconds:
            print(f"[bench] before {what}: machine {busy:.0%} busy with other work, waiting")
            started = time.monotonic()
            busy = psutil.cpu_percent(interval=5.0) / 100
            self.waited_seconds += time.monotonic() - started
        return busy


class RssSampler:
    """Samples the resident set size of some processes in a thread; keeps each one's peak."""

    def __init__(self, pids: Iterable[int], interval: float = 0.1) -> None:
        self.peaks: dict[int, int] = dict.fromkeys(pids, 0)
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        processes = {pid: psutil.Process(pid) for pid in self.peaks}
        while not self._stop.is_set():
            for pid, process in processes.items():
                try:
                    rss = process.memory_info().rss
                except psutil.Error:
                    continue
                self.peaks[pid] = max(self.peaks[pid], rss)
            self._stop.wait(self._interval)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

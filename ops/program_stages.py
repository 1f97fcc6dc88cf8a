"""Stages the tiled programs are built from: ranges of a loop, and ping-pong buffers with their
flags (the producer waits for the consumer's release before the n-th reuse, and the last uses'
flags are drained so every SetFlag has its WaitFlag)."""

from __future__ import annotations

from npusim.engine.program import ProgramBuilder


def ranges(lo: int, hi: int, size: int) -> list[tuple[int, int]]:
    """[lo, hi) in consecutive pieces of ``size`` (the last one shorter)."""
    return [(a, min(hi, a + size)) for a in range(lo, hi, size)]


class PingPong:
    """A producer -> consumer ping-pong resource: wait for 'free' before the n-th reuse."""

    def __init__(self, b: ProgramBuilder, prod: str, cons: str, ids: tuple[int, ...]) -> None:
        self.b, self.prod, self.cons, self.ids = b, prod, cons, ids
        self.uses = 0

    def acquire(self) -> int:
        """Index of the buffer to fill next, waiting until its consumer released it."""
        i = self.uses % len(self.ids)
        if self.uses >= len(self.ids):
            self.b.wait_flag(self.cons, self.prod, self.ids[i])
        self.uses += 1
        return i

    def ready(self, i: int) -> None:
        self.b.sync(self.prod, self.cons, self.ids[i])

    def release(self, i: int) -> None:
        self.b.set_flag(self.cons, self.prod, self.ids[i])

    def drain(self) -> None:
        for j in range(min(self.uses, len(self.ids))):
            i = (self.uses - 1 - j) % len(self.ids)
            self.b.wait_flag(self.cons, self.prod, self.ids[i])

"""Errors the engine raises for programs the hardware would punish (never a hang, never silence)."""


class ProgramError(ValueError):
    """A malformed program (unknown path, bad pipe, bad parameters)."""


class BufferOverflowError(ProgramError):
    """A region outside its buffer's capacity."""


class MisalignedError(ProgramError):
    """A region whose offset breaks its buffer's alignment rule."""


class RaceError(RuntimeError):
    """A pipe accessed a region before its producer (or a pending reader) signalled it."""


class DeadlockError(RuntimeError):
    """Some pipes wait on flags that can never be set."""


class SyncError(ProgramError):
    """Misuse of SetFlag/WaitFlag or cross-core flags (ids out of range, double set, bad mode)."""

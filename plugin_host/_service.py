"""The one task-group service: an async context manager that owns a task group for as long as its block runs.

Entering starts the service (nothing starts in ``__init__``), leaving stops it: a graceful stop under a shielded,
bounded wait, then the group is cancelled and waited for, then what outlives the group (sockets, files) is released.
An instance is entered once; entering it again is refused. Subclasses fill in the hooks they need:

- ``_service_prepare()``: before the group exists (bind a socket, check a directory); a failure leaves nothing behind;
- ``_service_start(tg)``: start the tasks (``tg.start_soon`` / ``await tg.start``); on failure ``_service_abort()``
  runs shielded, the group is cancelled and ``_service_release()`` runs;
- ``_service_stop()``: the graceful stop on leaving, shielded and bounded by ``_service_stop_timeout()``
  (``_service_stop_timed_out()`` is told when the bound ran out);
- ``_service_release()``: after the group is done, on every way out.
"""

from __future__ import annotations

import math
from types import TracebackType
from typing import Self

import anyio
from anyio.abc import TaskGroup

__all__ = ["TaskGroupService"]


class TaskGroupService:
    """Base class of a service owning one task group; ``_lifecycle`` is ``"new"``, ``"running"`` or ``"closed"``."""

    _tg: TaskGroup | None
    _lifecycle: str

    def __init__(self) -> None:
        self._tg = None
        self._lifecycle = "new"

    # --- hooks ----------------------------------------------------------------------------------------------------

    def _service_refused(self, lifecycle: str) -> Exception:
        """The error for entering the service a second time."""
        return RuntimeError(f"this {type(self).__name__} was already {lifecycle}; create a new one")

    async def _service_prepare(self) -> None:
        """Runs before the task group exists."""

    async def _service_start(self, tg: TaskGroup) -> None:
        """Start the service's tasks in ``tg``."""

    async def _service_abort(self) -> None:
        """Undo a start that failed, before the group is cancelled (shielded)."""

    def _service_stop_timeout(self) -> float:
        """Seconds the graceful stop may take (``math.inf``: no bound)."""
        return math.inf

    async def _service_stop(self) -> None:
        """The graceful stop, before the group is cancelled (shielded, bounded)."""

    def _service_stop_timed_out(self) -> None:
        """Told when the graceful stop ran past its bound (and was cut short)."""

    async def _service_release(self) -> None:
        """Release what outlives the group; runs after the group is done, however the service ended."""

    # --- the context manager --------------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._lifecycle != "new":
            raise self._service_refused(self._lifecycle)
        self._lifecycle = "running"
        try:
            await self._service_prepare()
        except BaseException:
            self._lifecycle = "closed"
            raise
        # Entered by hand (not `async with`) so that the group outlives this call and is left in __aexit__.
        tg = anyio.create_task_group()
        await tg.__aenter__()
        self._tg = tg
        try:
            await self._service_start(tg)
        except BaseException:
            self._lifecycle = "closed"
            try:
                with anyio.CancelScope(shield=True):
                    await self._service_abort()
            finally:
                self._tg = None
                tg.cancel_scope.cancel()
                try:
                    await tg.__aexit__(None, None, None)
                finally:
                    await self._service_release()
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        tg = self._tg
        if tg is None:
            return None
        self._lifecycle = "closed"
        try:
            with anyio.move_on_after(self._service_stop_timeout(), shield=True) as scope:
                await self._service_stop()
            if scope.cancelled_caught:
                self._service_stop_timed_out()
        finally:
            tg.cancel_scope.cancel()
            try:
                suppressed = await tg.__aexit__(exc_type, exc, tb)
            finally:
                # Only now: a task finishing just as the cancel came may still need the group.
                self._tg = None
                await self._service_release()
        return suppressed

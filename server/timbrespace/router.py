"""The router: one decoded message in, its sender's context built, its handler called, replies out.

It knows the address declaration and the sessions (who is speaking), not the engines: the owner
gives it one table of handlers per layer (:meth:`Router.set_tables`); a message is for the
sender's layer, or for layer N when its address starts with ``/layer/N/``. Every message that cannot be carried out
is answered with ``/fail <address> <reason>``, logged (rate-limited) and counted; nothing escapes
to the transport. Changes to what a layer sounds are marked for feedback here, once, from the
declaration (``Address.feedback``), so no handler has to remember to do it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Sequence
from typing import Any, Protocol

from timbrespace.engines.base import Handler, HandlerError, Reply
from timbrespace.protocol import addresses
from timbrespace.protocol.declaration import Address, InvalidMessage, Value
from timbrespace.protocol.peer import Incoming, Peer
from timbrespace.protocol.replies import clip_fail
from timbrespace.ratelog import RateLimitedLog
from timbrespace.session.clients import Client, SessionFull, Sessions
from timbrespace.session.context import Context
from timbrespace.session.feedback import Feedback
from timbrespace.status import Counters

log = logging.getLogger(__name__)

#: Rejections logged per second at most; the rest are counted in one line.
LOG_REJECTS = 20
#: Internal errors (with their traceback) logged per second at most.
LOG_INTERNAL = 5
#: ``/layer/N/ADDRESS``: ADDRESS for layer N, whichever layer the sender plays.
LAYER_PREFIX = "/layer/"

#: Handles a declared address with the sender's context; raises HandlerError or InvalidMessage.
Special = Callable[[Address, tuple[Value, ...], Context], list[Reply]]


class Channel(Protocol):
    """The audio command channel's view of who speaks (``timbrespace.link.outbox.Outbox``)."""

    def speaking(self, sender: Hashable | None) -> None: ...
    def refusal(self) -> str | None: ...


class Router:
    """Dispatches validated messages to handlers with the sender's context."""

    def __init__(
        self,
        sessions: Sessions,
        feedback: Feedback,
        counters: Counters,
        *,
        rate_limit: float = 0.0,
        burst: int = 1,
        explain: Callable[[str, tuple[Value, ...], int], HandlerError | None] = lambda path, args, layer: None,
        clock: Callable[[], float],
    ) -> None:
        self.sessions = sessions
        self.feedback = feedback
        self.counters = counters
        #: Messages per second a non-admin client may send (bursts of ``burst``); 0: no limit.
        self.rate_limit = rate_limit
        self.burst = burst
        #: A clearer reason for a HandlerError (e.g. the name belongs to the other engine).
        self.explain = explain
        self.clock = clock
        #: The audio command channel, told who speaks while a handler runs (each client has a
        #: share of it; see link.outbox); None: no share is kept (a render).
        self.channel: Channel | None = None
        self._tables: list[dict[str, Handler]] = [{}]
        self._missing: dict[str, str] = {}
        self._log_rejects = RateLimitedLog(log, LOG_REJECTS, "rejected messages", clock)
        self._log_internal = RateLimitedLog(log, LOG_INTERNAL, "internal errors", clock)

    def set_tables(self, tables: Sequence[dict[str, Handler]], missing: dict[str, str]) -> None:
        """Each layer's address -> handler; ``missing``: address -> why no engine here serves it."""
        self._tables = list(tables)
        self._missing = missing

    def dispatch(self, msg: Incoming) -> list[Reply]:
        """Handle one message; the replies go back to its sender."""
        self.counters.received += 1
        client = self.sessions.heard(msg.peer, msg.arrival)
        if msg.address in addresses.REPLY_ADDRESSES:
            self.counters.ignored += 1
            self._log_rejects.info("ignored %.80s from %s: the server does not answer replies", msg.address,
                                   client.label)
            return []
        if self.rate_limit and not client.admin and not self._take(client, msg.arrival):
            self.counters.limited += 1
            if msg.arrival - client.told_limited < 1.0:
                return []
            client.told_limited = msg.arrival
            return self.fail(msg.address, f"over this client's rate limit ({self.rate_limit:g} messages/s, bursts "
                             f"of {self.burst}; sessions.rate_limit): messages dropped; this /fail is sent once a "
                             "second at most", client)
        try:
            path, layer = self._layer_of(msg.address, client)
            ctx = Context(client, msg.arrival, layer)
            decl = addresses.lookup(path)
            if path != msg.address and decl.scope != "layer":
                raise InvalidMessage(f"{msg.address}: {decl.path} is not a layer's address (its scope is the "
                                     f"{decl.scope}); send it without /layer/N")
            args = decl.parse(msg.args)
            if decl.needs_admin(args) and not ctx.admin:
                raise HandlerError(f"{decl.path} {' '.join(map(str, args))}: admin only (from loopback or an "
                                   "address in sessions.admin)")
            handler = self._tables[ctx.layer].get(decl.path)
            if handler is None:
                raise HandlerError(f"{decl.path}: served by the {decl.engine} engine, which is not running on "
                                   f"this server ({self._missing.get(decl.path, 'not configured')})")
            channel = self.channel
            if channel is not None:
                channel.speaking(client.key)
            try:
                replies = handler(args, ctx)
            except HandlerError as e:
                share = channel.refusal() if channel is not None else None
                if share is not None:
                    raise HandlerError(f"{decl.path}: {share}") from None
                raise self.explain(decl.path, args, ctx.layer) or e from None
            finally:
                if channel is not None:
                    channel.speaking(None)
            if decl.feedback and len(self.feedback):
                self.feedback.changed(ctx.layer, (decl.path, *args[: decl.feedback_key]), client, msg.arrival)
            return replies
        except (InvalidMessage, HandlerError, SessionFull) as e:
            return self.fail(msg.address, str(e), client)
        except Exception as e:  # a bug must cost one message, never the server
            self._log_internal.error("internal error handling %.80s from %s", msg.address, client.label, exc_info=e)
            return self.fail(msg.address, f"internal error: {type(e).__name__}: {e}", client)

    def _layer_of(self, address: str, client: Client) -> tuple[str, int]:
        """The address without a ``/layer/N`` prefix, and the layer it is for (else the sender's)."""
        if not address.startswith(LAYER_PREFIX):
            return address, min(client.layer, len(self._tables) - 1)
        number, sep, rest = address[len(LAYER_PREFIX):].partition("/")
        if not number.isdigit() or not sep:
            raise InvalidMessage(f"{address[:80]}: expected /layer/N/ADDRESS, N a layer number")
        layer = int(number)
        if layer >= len(self._tables):
            raise InvalidMessage(f"{address[:80]}: layer {layer} is out of range 0..{len(self._tables) - 1} "
                                 "(this server's layers)")
        return "/" + rest, layer

    def fail(self, address: str, reason: str, who: Client | Peer) -> list[Reply]:
        """Count and log a rejection; its /fail, clipped to fit one datagram."""
        self.counters.rejected += 1
        label = who.label if isinstance(who, Client) else f"{who.host}:{who.port}"
        self._log_rejects.info("rejected %.80s from %s: %.300s", address or "(packet)", label, reason)
        return [("/fail", clip_fail(address, reason))]

    def _take(self, c: Client, now: float) -> bool:
        """The per-client token bucket; over it, one /fail a second is sent (by the caller's count)."""
        if c.tokens < 0:  # a new client starts with a full bucket
            c.tokens, c.counted = float(self.burst), now
        c.tokens = min(float(self.burst), c.tokens + (now - c.counted) * self.rate_limit)
        c.counted = now
        if c.tokens >= 1.0:
            c.tokens -= 1.0
            return True
        return False

    def describe(self) -> dict[str, Any]:
        """Counters for logs and the bench."""
        return {"handlers": len(self._tables[0]), "limited": self.counters.limited}

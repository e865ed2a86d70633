"""The OSC address space: every address declared once, with types, ranges and a one-line doc.

Validation (``Address.parse``, see ``protocol/declaration.py`` for the argument kinds),
``docs/protocol.md``, the OSCQuery namespace and the client layouts all derive from
:data:`ADDRESSES`; nothing else in the project spells an address's argument list.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from timbrespace.collector import PAUSE_BUDGET_S
from timbrespace.engines.registry import NAMES, SPECS
from timbrespace.link.input import LAT_RING
from timbrespace.link.layers import GAIN_RANGE, PAN_RANGE
from timbrespace.session.clients import CLIENT_TIMEOUT, MAX_TOUCH_ID, MAX_TOUCHES
from timbrespace.session.collision import HOLD_RANGE, POLICIES
from timbrespace.session.feedback import TICK_BUDGET_S, UDP_SUBSCRIPTION_S

from .declaration import INT32, Address, Arg, ArgKind, InvalidMessage, Value, num_text, show
from .replies import FIRST_UNPRIVILEGED_PORT


def _check_param(value: Value, values: tuple[Value, ...]) -> None:
    """The parameter must exist and the value lie in that parameter's own range."""
    # Imported here: the protocol layer only needs the parameter table, not the patch engine.
    from timbrespace.patch import params

    name = values[0]
    assert isinstance(name, str)
    if name not in params.INDEX:
        raise InvalidMessage(
            f"/param argument 'name': unknown amSynth parameter {show(name)}; expected one of: "
            + ", ".join(params.NAMES)
        )
    spec = params.spec(name)
    assert isinstance(value, float)
    if not spec.minimum <= float(value) <= spec.maximum:
        raise InvalidMessage(
            f"/param {name}: {value:g} is out of range [{num_text(spec.minimum)}, {num_text(spec.maximum)}]"
        )


#: The engines a server can run (``/engine``), as engines/registry.py declares them; a server
#: without an optional engine (the timbre model missing) refuses it.
ENGINES = NAMES
#: What the timbre engine's ``/latent`` moves over (``/map``).
MAPS = ("corners", "learned")
#: Dimensions a timbre model's code may have, at most: the declared bound of ``/z index``. The
#: model's own count (16 for the shipped one) is known only once it loads, so the engine checks it
#: and its /fail names the real range.
MAX_TIMBRE_DIMS = 64
#: Presets one ``/patch/list`` may ask for (a page is also bounded in bytes, see engines/patch).
LIST_PAGE_MAX = 64
#: Characters of a /hello name at most.
MAX_NAME = 32
#: Latencies one ``/status/latency`` reply carries at most: a reader polling twice a second keeps up
#: with a finger's moves, and the reply stays within what one small UDP request may cause (see
#: protocol/transport).
LATENCY_REPLY = 48


Check = Callable[[Value, tuple[Value, ...]], None]


def _one_of(address: str, arg: str, what: str, options: tuple[str, ...]) -> Check:
    def check(value: Value, values: tuple[Value, ...]) -> None:
        if value not in options:
            raise InvalidMessage(f"{address} argument {arg!r}: unknown {what} {show(value)}; expected one of: "
                                 + ", ".join(options))

    return check


def _choice(address: str, name: str, doc: str, what: str, options: tuple[str, ...], default: Value | None = None,
            admin_values: tuple[Value, ...] = ()) -> Arg:
    """A string argument that takes one of ``options``: checked, and listed for OSCQuery."""
    return Arg(name, "str", doc, check=_one_of(address, name, what, options), default=default,
               admin_values=admin_values, choices=options)


def _a(name: str, kind: ArgKind, doc: str, lo: float | None = None, hi: float | None = None) -> Arg:
    return Arg(name, kind, doc, lo, hi)


def _name(value: Value, values: tuple[Value, ...]) -> None:
    """A name others see on their screens: short, printable, no look-alike or direction tricks."""
    text = str(value)
    if not 1 <= len(text) <= MAX_NAME or text != text.strip() or not all(c.isalnum() or c in " -_." for c in text):
        raise InvalidMessage(f"/hello argument 'name': {show(text)} is not a name; expected 1 to {MAX_NAME} "
                             "letters, digits, spaces, '-', '_' or '.', not starting or ending with a space")


def _unprivileged(value: Value, values: tuple[Value, ...]) -> None:
    """Replies never go to a privileged port (echo, chargen, DNS...): a reply there starts loops."""
    if 0 < int(value) < FIRST_UNPRIVILEGED_PORT:
        raise InvalidMessage(f"/reply/port argument 'port': {value} is a privileged port; expected 0 (the "
                             f"sending port) or {FIRST_UNPRIVILEGED_PORT}..65535")


ADDRESSES: tuple[Address, ...] = (
    # -- server ---------------------------------------------------------------------------------
    Address("/status", (), "Ask for the server's state.", "server", "/status.reply",
            "key value pairs: clients (the session's members, see /clients, plus senders heard from in the last "
            f"{CLIENT_TIMEOUT:g} s: each UDP source address and each TCP connection; a one-shot sender such as an "
            "oscsend call counts for that long), "
            "voices, engine, audio, sample_rate, block_size, device, "
            "received, rejected, late_blocks, latency_p50_ms, latency_p99_ms, audio_stall_s (seconds the "
            "audio process has rendered no block; 0 unless it is stalled now), level_db (the peak of everything "
            "summed, before the master limiter (audio.ceiling_db), dBFS, held and falling 40 dB a second like "
            "a PPM; -120 when silent; above the ceiling, the limiter is holding the output down), "
            "input_level_db (the live input's RMS level after its gain, dBFS; -120 when off or absent), "
            "input_f0 (its tracked pitch in Hz; 0 when unvoiced, off or absent; /input/status has the rest, "
            "the measured latency included)", scope="server"),
    Address("/version", (), "Ask for the server's version.", "server", "/version.reply",
            "name, version, protocol version", scope="server"),
    Address("/sync", (_a("id", "int", "any int32, echoed back", *INT32),),
            "Reply once everything sent before it has taken effect in the audio.", "server",
            "/synced", "id", scope="server"),
    Address("/reply/port", (Arg("port", "int", f"UDP port on the sender's host, {FIRST_UNPRIVILEGED_PORT}..65535 "
                                "and not the server's own; 0: the sending port again", 0, 65535,
                                check=_unprivileged),),
            "Send this sender's replies to another UDP port of its host (Max's udpsend cannot receive).",
            "server", "/reply/port.reply", "port, sent to the new port", scope="client"),
    # -- notes ----------------------------------------------------------------------------------
    Address("/note", (_a("pitch", "int", "MIDI note number", 0, 127),
                      _a("velocity", "int", "MIDI velocity; 0 releases the note", 0, 127)),
            "Start (velocity > 0) or release (velocity 0) a note; polyphonic.", "notes"),
    Address("/pitch", (_a("midi", "float", "fractional MIDI pitch", 0, 127),),
            "Glide the most recent note to a pitch.", "notes"),
    Address("/panic", (_choice("/panic", "which", "mine (the notes this client started) or all (everyone's: admin "
                               "only)", "choice", ("mine", "all"), default="mine", admin_values=("all",)),),
            "Release the sender's sounding notes at once; /panic all releases everyone's.", "notes"),
    Address("/touch", (_a("id", "int", f"the finger, a number the sender chooses (at most {MAX_TOUCHES} down at once)",
                          0, MAX_TOUCH_ID),
                       _a("x", "float", "horizontal map position", 0, 1),
                       _a("y", "float", "vertical map position", 0, 1),
                       Arg("pitch", "int", "MIDI note number (default 60), taken when the finger comes down", 0, 127,
                           default=60),
                       Arg("velocity", "int", "MIDI velocity (default 100), taken when the finger comes down", 1, 127,
                           default=100)),
            "A finger on the map, each its own voice: the first /touch of an id starts a note at (x, y), the next "
            "ones move it there, /touch/off ends it. Timbre: each finger's note sounds its own point of the map "
            "(the layer's map, corners or learned). Patch: a layer has one patch, so a finger plays its key and "
            "moves the layer's point as /latent does (the last finger moved wins). Others see each finger as "
            "/cursor/touch; a client's fingers are lifted when it leaves.", "notes"),
    Address("/touch/off", (_a("id", "int", "a finger down (sent with /touch)", 0, MAX_TOUCH_ID),),
            "Lift a finger: its note is released.", "notes"),
    # -- engines --------------------------------------------------------------------------------
    Address("/engine", (_choice("/engine", "name", " or ".join(f"{s.name} ({s.summary})" for s in SPECS), "engine",
                                ENGINES),),
            "Select the sound engine; notes sounding on the other engine are released.", "server",
            feedback=True),
    # -- the map ----------------------------------------------------------------------------------
    Address("/latent", (_a("x", "float", "horizontal map position", 0, 1),
                        _a("y", "float", "vertical map position", 0, 1)),
            "Move to a point of the 2-D map (patch: the preset map; timbre: the corners' blend or the learned "
            "map, see /map); "
            "sounding notes follow within a block (patch) or a control frame (timbre).", "map", feedback=True),
    Address("/source", (_a("item", "ref", "patch: a preset; timbre: an instrument (index or name)"),),
            "Set the interpolation source: a preset's or an instrument's place in latent space.", "map",
            feedback=True),
    Address("/target", (_a("item", "ref", "patch: a preset; timbre: an instrument (index or name)"),),
            "Set the interpolation target: a preset's or an instrument's place in latent space.", "map",
            feedback=True),
    Address("/alpha", (_a("alpha", "float", "0 = source, 1 = target", 0, 1),),
            "Sound the point z_source + alpha*(z_target - z_source) of latent space (timbre transfer); patch: "
            "alpha of the way along the route across the map where the sound changes least, each switch "
            "(waveform, filter type, range) keeping the source's or the target's setting, changing once.",
            "map", feedback=True),
    Address("/corners", tuple(_a(n, "ref", f"{w} corner instrument (index or name)")
                              for n, w in (("a", "(0, 0)"), ("b", "(1, 0)"), ("c", "(0, 1)"), ("d", "(1, 1)"))),
            "Timbre engine: the four instruments the /latent map blends bilinearly.", "map", engine="timbre",
            feedback=True),
    Address("/map", (_choice("/map", "kind", "corners (the four instruments' bilinear blend) or learned (the map "
                             "fitted to the notes, models/timbre-gmvae/TIMBRE_MAP.md)", "map", MAPS),),
            "Timbre engine: choose what /latent x y moves over; the point moves at once.", "map", engine="timbre",
            feedback=True),
    Address("/z", (_a("index", "int", "dimension of the timbre code: 0 to the model's dimensions - 1 (0-15 for "
                      "the shipped model, which has 16; a /fail names the loaded model's range)",
                      0, MAX_TIMBRE_DIMS - 1),
                   _a("value", "float", "offset in prior standard deviations", -4, 4)),
            "Timbre engine: move along one dimension of the timbre code, on top of the map point.", "map",
            engine="timbre", feedback=True, feedback_key=1),
    # -- patches --------------------------------------------------------------------------------
    Address("/patch/load", (_a("preset", "ref", "index or name (bank/name when ambiguous)"),),
            "Load a preset exactly; the map point moves to where it encodes.", "patch",
            "/patch/load.reply", "index, bank/name, x, y, then \"heard\", or \"not heard: ...\" when the timbre "
            "engine is heard (the preset is loaded all the same and sounds after /engine patch)", feedback=True),
    Address("/patch/save", (_a("name", "str", "preset name (not a path)"),),
            "Append the current sound to the user bank (an amSynth .bank file).", "patch",
            "/patch/save.reply", "index, bank/name, file name of the user bank"),
    Address("/patch/list", (_a("start", "int", "index of the first preset to list", 0, INT32[1]),
                            _a("count", "int", "presets to list at most", 1, LIST_PAGE_MAX)),
            "List a page of the loaded presets: one reply of at most ~250 bytes (it fits any UDP reply budget); "
            "ask again from start + the names received until total.", "patch", "/patch/list.reply",
            "total, start index, then bank/name of each preset from there (fewer than count when they "
            "would not fit one page; none when start >= total)"),
    Address("/param", (_a("name", "str", "amSynth parameter name"),
                       Arg("value", "float", "value in amSynth's bank units", check=_check_param)),
            "Set one amSynth parameter directly, on top of the current patch.", "patch", feedback=True,
            feedback_key=1),
    # -- live input -----------------------------------------------------------------------------
    Address("/input", (_a("on", "int", "1: on (a WAV input plays from its start), 0: off", 0, 1),),
            "Turn the live input on or off: its pitch and level are tracked and a voice with the target's "
            "timbre follows them (docs/live-transfer.md); off, the input path costs nothing. The input belongs to "
            "one layer (config input.layer): the other layers' /input addresses answer /fail naming it.", "input",
            engine="timbre", feedback=True),
    Address("/input/target", (_a("instrument", "ref", "an instrument of the timbre model (index or name)"),),
            "The instrument whose timbre the input's voice takes.", "input", engine="timbre", feedback=True),
    Address("/input/alpha", (_a("alpha", "float", "0 = the input's timbre point, 1 = the target's", 0, 1),),
            "Move the voice's timbre from the input's point toward the target's, as /alpha does for notes.",
            "input", engine="timbre", feedback=True),
    Address("/input/gain", (_a("db", "float", "gain in dB", -60, 24),),
            "Gain applied to the input before it is tracked, gated and mixed in.", "input", engine="timbre",
            feedback=True),
    Address("/input/transpose", (_a("semitones", "float", "interval the voice plays above the input", -24, 24),),
            "Transpose the voice against the tracked pitch.", "input", engine="timbre", feedback=True),
    Address("/input/dry", (_a("level", "float", "0: none, 1: the input as loud as it comes in", 0, 1),),
            "Mix the input itself into the output.", "input", engine="timbre", feedback=True),
    Address("/input/gate", (_a("db", "float", "RMS level in dBFS, after the gain", -120, 0),),
            "Below this level the voice is silent (no hiss); above, it follows the input's level.", "input",
            engine="timbre", feedback=True),
    Address("/input/status", (), "Ask for the live input's settings, what it tracks now and the latency "
            "measured as it plays (docs/live-transfer.md).", "input", "/input/status.reply",
            "key value pairs: on (0 or 1), target (the instrument's name), alpha, gain_db, transpose, dry, gate_db "
            "(as set), level_db (the input's RMS level after its gain, dBFS; -120 when off), f0 (its tracked "
            "pitch in Hz; 0 when unvoiced or off), voiced (0 or 1), latency_p50_ms, latency_p99_ms (from a "
            f"note's onset to the voice at its pitch, counted by the audio process over the newest {LAT_RING} "
            "notes that held a pitch; 0 before any), latency_count (such notes since the server started)",
            engine="timbre"),
    # -- sessions -------------------------------------------------------------------------------
    Address("/hello", (Arg("name", "str", f"a name for this player, 1 to {MAX_NAME} characters, letters, digits, "
                           "spaces and - _ . only", check=_name),),
            "Join the session as NAME; the same name gets the same id back (after a restart of the client or "
            "a new address). Proves a UDP address: feedback and larger replies need it.", "session",
            "/hello.reply", "id, name", scope="client"),
    Address("/bye", (), "Leave the session: this client's notes are released and its subscription ends.",
            "session", "/done", "\"/bye\", id", scope="client"),
    Address("/clients", (Arg("start", "int", "index of the first member to list (default 0)", 0, INT32[1], default=0),),
            "List the session's members (who said /hello, holds a note or subscribed).", "session",
            "/clients.reply", "total, start, then id, name, layer of each member from start (as many as fit "
            "one reply: ask again from start + the members received until total)", scope="server"),
    Address("/notify", (_a("on", "int", "1 subscribes, 0 ends the subscription", 0, 1),
                        Arg("cursors", "int", "1 (the default): the other players' points too, as /cursor; 0: none "
                            "(a page that draws no cursors)", 0, 1, default=1)),
            "Subscribe to the layer's feedback: its whole state at once, then every change (same addresses "
            "and types as the messages that set it), coalesced to sessions.feedback_rate; others' points "
            "as /cursor, joins and leaves as /clients. Over UDP it needs /hello first and ends after "
            f"{UDP_SUBSCRIPTION_S:g} s unless renewed; over TCP it lasts as long as the connection.",
            "session", "/done", "\"/notify\", id", scope="client"),
    Address("/watch", (_a("layer", "int", "the layer to follow besides the one you play", 0, 255),
                       Arg("on", "int", "1 (the default) follows it, 0 stops", 0, 1, default=1)),
            "Also receive layer N's feedback while subscribed (/notify 1 first), each address under "
            "/layer/N (/layer/2/latent x y): its state at once, then every change, your own included "
            "(cursors and joins come once, with your own layer's). For a live coder or a monitor "
            "following several layers; OSCQuery's LISTEN on /layer/N/... paths uses it.",
            "session", "/done", "\"/watch\", layer", scope="client"),
    Address("/layer", (_a("index", "int", "the layer to play (0 is everyone's to start with; config layers)", 0, 255),),
            "Play layer INDEX from now on: every layer's address you send goes to it, and a subscription "
            "follows it (that layer's state arrives at once). /layer/N/ADDRESS ... sends one message to layer N "
            "whichever layer you play.", "session", "/layer.reply", "index", scope="client"),
    # -- a layer's place in the mix and its map point's policy (admin: they change everyone's sound)
    Address("/mix/gain", (_a("gain", "float", "linear level (1: as loud as a server with one layer; config "
                             "layers[N].gain)", *GAIN_RANGE),),
            "Set the layer's level in the mix, ramped (no click). Admin only.", "session", admin=True,
            feedback=True),
    Address("/mix/pan", (_a("pan", "float", "-1 left, 0 centre, 1 right, equal power (config layers[N].pan)",
                            *PAN_RANGE),),
            "Set where the layer stands in the stereo mix, ramped. Admin only.", "session", admin=True,
            feedback=True),
    Address("/collision", (_choice("/collision", "policy", "last (the latest move wins), lock (the first mover "
                                   "holds the point) or blend (the mean of everyone's points)", "policy", POLICIES),
                           Arg("hold", "float", "seconds after its last move that a client still holds (lock) or "
                               "counts in (blend) the point", *HOLD_RANGE, default=1.0)),
            "Set who moves the layer's map point when several people move it (config layers[N].collision); "
            "whoever held or touched it starts afresh. Admin only.", "session", admin=True, feedback=True),
    Address("/status/feedback", (), "Ask for the feedback's counters (what fanning changes out to "
            "subscribers costs the server).", "session", "/status/feedback.reply",
            "key value pairs: subscribers, ticks (flushes that sent feedback to at least one subscriber), tick_ms "
            "(the time those took in all, comparing, encoding and sending), slow_ticks (those over "
            f"{TICK_BUDGET_S * 1000:g} ms), sent (messages sent in all), coalesced (changes replaced by a newer "
            "one before they were sent)", scope="server"),
    Address("/status/latency", (), "Ask for the newest arrival-to-block latencies, one per command or map "
            "point the audio applied, oldest first (a client joins them with what it sent).", "server",
            "/status/latency.reply",
            "count (latencies recorded since the audio process started, modulo 2^31), then the newest up to "
            f"{LATENCY_REPLY} of them in ms", scope="server"),
    Address("/status/runtime", (), "Ask what the control process's garbage collector costs (objects frozen "
            "at startup are never walked again; docs/scaling.md).", "server", "/status/runtime.reply",
            "key value pairs: frozen (objects put out of the collector's reach at startup), collections, "
            "full_collections, gc_ms (the time collections took in all), gc_max_ms (the longest), "
            f"slow_collections (those over {PAUSE_BUDGET_S * 1000:g} ms)", scope="server"),
)

BY_PATH: dict[str, Address] = {a.path: a for a in ADDRESSES}

#: Replies the server sends that are not tied to one request address.
SERVER_REPLIES: dict[str, str] = {
    "/fail": "address, reason: the message to that address was rejected and why",
    "/cursor": "id, name, x, y (feedback): another client's own /latent point on this layer",
    "/cursor/touch": "id, name, touch, x, y, down (feedback): another client's finger (/touch) on this layer; "
                     "down is 1 while it is down, 0 once lifted (a /clients left lifts all of that client's)",
}
#: Feedback messages that share a request's address (the server never treats them as replies).
FEEDBACK_EVENTS: dict[str, str] = {
    "/clients": "joined|left, id, name, layer (feedback): a member joined or left the session",
}


#: Addresses of the server's replies: a message to one is counted and never answered (answering
#: a /fail with a /fail lets two servers, or a server and itself, answer each other forever).
REPLY_ADDRESSES: frozenset[str] = frozenset(
    {"/fail", *SERVER_REPLIES, *(a.reply for a in ADDRESSES if a.reply is not None)}
)


def lookup(path: str) -> Address:
    """The declaration of ``path``; InvalidMessage when the address is not part of the API."""
    try:
        return BY_PATH[path]
    except KeyError:
        raise InvalidMessage(f"unknown address {show(path)}; send /status, or see docs/protocol.md") from None


def groups() -> Iterable[tuple[str, list[Address]]]:
    """Addresses grouped for documentation, in declaration order."""
    seen: dict[str, list[Address]] = {}
    for a in ADDRESSES:
        seen.setdefault(a.group, []).append(a)
    return seen.items()

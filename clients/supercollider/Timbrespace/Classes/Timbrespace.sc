// Timbrespace: a thin NetAddr wrapper that plays a Timbrespace OSC sound server.
// The address space is in docs/protocol.md; out-of-range values are not clipped here: the
// server answers them with /fail, which this class prints. With hello and notify it joins the
// session and keeps a mirror of the layer it plays on (TimbrespaceMirror), fed by the server.

Timbrespace {
	classvar <>defaultPort = 57130;
	var <addr, <lastStatus, <failures, <>onFail, <>verbose = true;
	// The session: this client's id and name (after hello), the layer it plays on (0 until it
	// chooses another with `layer = N`), the mirror of every layer it heard of, and the subscription.
	var <id, <name, <layer = 0, <mirrors, <subscribed = false, <renewals = 0;
	// A UDP subscription ends 60 s after the last /notify 1: it is renewed this often (seconds).
	var <>renewPeriod = 25;
	var pending, defs, renewer, notifying = false, clientRows;

	*new { |host = "127.0.0.1", port|
		^super.new.init(host, port ? defaultPort)
	}

	*initClass {
		Class.initClassTree(Event);
		// A Pbind event type: (type: \timbrespace, timbrespace: ts, midinote: 60, x: 0.3, y: 0.7)
		Event.addEventType(\timbrespace, {
			var ts = ~timbrespace, notes, vel, sustain;
			if(ts.isNil) {
				"Timbrespace event: set the key \\timbrespace to a Timbrespace".warn;
			} {
				if(~x.notNil and: { ~y.notNil }) { ts.latent(~x.value, ~y.value) };
				if(~alpha.notNil) { ts.alpha(~alpha.value) };
				if(~zIndex.notNil and: { ~zValue.notNil }) { ts.z(~zIndex.value, ~zValue.value) };
				if(currentEnvironment.isRest.not) {
					notes = ~midinote.value.asArray.collect { |n| n.round.asInteger };
					vel = (~velocity ? 100).value;
					sustain = ~sustain.value;
					notes.do { |n| ts.note(n, vel) };
					thisThread.clock.sched(sustain, { notes.do { |n| ts.release(n) }; nil });
				};
			};
		});
	}

	init { |host, port|
		addr = NetAddr(host, port);
		failures = List.new;
		pending = IdentityDictionary.new;
		mirrors = TimbrespaceMirror.new;
		clientRows = List.new;
		CmdPeriod.add(this);
		defs = this.prSessionDefs ++ [
			this.prDef('/status.reply', { |args|
				lastStatus = ();
				args.pairsDo { |k, v| lastStatus[k.asSymbol] = v };
				this.prRun('/status.reply', lastStatus);
			}),
			this.prDef('/version.reply', { |args| this.prRun('/version.reply', args) }),
			this.prDef('/synced', { |args| this.prRun('/synced', args[0]) }),
			this.prDef('/patch/load.reply', { |args|
				mirrors.apply('/patch/load.reply', args, layer);
				this.prRun('/patch/load.reply', args);
			}),
			this.prDef('/patch/save.reply', { |args| this.prRun('/patch/save.reply', args) }),
			this.prDef('/fail', { |args|
				failures.add(args);
				if(verbose) { "Timbrespace /fail: % %".format(args[0], args[1]).warn };
				onFail.value(args[0].asString, args[1].asString);
			})
		];
	}

	// -- notes
	note { |pitch = 60, velocity = 100|
		addr.sendMsg("/note", pitch.round.asInteger, velocity.round.asInteger)
	}
	// (overrides Object:release, which only drops dependants; a Timbrespace has none)
	release { |pitch = 60| addr.sendMsg("/note", pitch.round.asInteger, 0) }
	pitch { |midi| addr.sendMsg("/pitch", midi.asFloat) }
	// this client's own notes; all: true releases everyone's (admin only: loopback by default)
	panic { |all = false| if(all) { addr.sendMsg("/panic", "all") } { addr.sendMsg("/panic") } }

	// -- fingers on the map, each a voice of its own (finger: 0-255, at most 10 down at once): the
	// first touch of a finger starts its note (pitch and velocity taken then; the server's
	// defaults 60 and 100 when nil), the next ones move it; touchOff lifts it and ends its note.
	// Under the patch engine (one patch per layer) a finger also moves the layer's point, which
	// the mirror then follows; the timbre engine sounds each finger at its own point.
	touch { |finger, x, y, pitch, velocity|
		var args = [finger.asInteger, x.asFloat, y.asFloat];
		if(pitch.notNil) { args = args ++ [pitch.round.asInteger, (velocity ? 100).round.asInteger] };
		addr.sendMsg("/touch", *args);
		if(this.mirror[\engine] == \patch) { mirrors.apply('/latent', args[1..2], layer) };
	}
	touchOff { |finger| addr.sendMsg("/touch/off", finger.asInteger) }

	// -- the engine heard: \patch (amSynth presets) or \timbre (the pitch/timbre model)
	engine { |name| this.prSet("/engine", name.asString) }

	// -- the map; source and target take a preset (patch engine) or an instrument (timbre engine),
	// as an index or a name ("French horn", \french_horn)
	latent { |x, y| this.prSet("/latent", x.asFloat, y.asFloat) }
	source { |item| this.prSet("/source", this.prPreset(item)) }
	target { |item| this.prSet("/target", this.prPreset(item)) }
	alpha { |a| this.prSet("/alpha", a.asFloat) }
	// timbre engine: the instruments at the map's corners (0,0) (1,0) (0,1) (1,1)
	corners { |a, b, c, d| this.prSet("/corners", *[a, b, c, d].collect { |i| this.prPreset(i) }) }
	// timbre engine: what /latent moves over, \corners or \learned
	map { |kind| this.prSet("/map", kind.asString) }
	// timbre engine: an offset (in prior sigmas) along one dimension of the timbre code
	z { |index, value| this.prSet("/z", index.asInteger, value.asFloat) }

	// -- patches; action receives the reply's arguments
	load { |preset, action| this.prRequest('/patch/load.reply', action, "/patch/load", this.prPreset(preset)) }
	save { |name, action| this.prRequest('/patch/save.reply', action, "/patch/save", name.asString) }
	param { |name, value| this.prSet("/param", name.asString, value.asFloat) }

	// -- the session. hello: join as `name` (the same name gets the same id back); action gets
	// [id, name]. notify(true): subscribe to the layer's feedback, which keeps `mirror` (renewed
	// every renewPeriod seconds while on); notify(false) ends it. bye: leave (the server releases
	// this client's notes). requestClients: the member list, every page; action gets `clients`.
	hello { |name, action| this.prRequest('/hello.reply', action, "/hello", name.asString) }
	notify { |on = true, action|
		notifying = on.asBoolean;
		renewer.stop;
		renewer = nil;
		if(notifying.not) { subscribed = false };
		this.prRequest('/done/notify', action, "/notify", notifying.binaryValue);
		if(notifying) { this.prRenew };
	}
	bye { |action|
		notifying = false;
		subscribed = false;
		renewer.stop;
		renewer = nil;
		this.prRequest('/done/bye', action, "/bye");
	}
	requestClients { |action| this.prRequest('/clients.reply', action, "/clients", 0) }
	// Play layer `index` from now on (ts.layer = 2); the mirror then follows that layer (its
	// state arrives at once while subscribed). action gets the index. onLayer sends one message
	// to another layer without moving there: ts.onLayer(3, "/latent", 0.2, 0.8).
	layer_ { |index, action| this.prRequest('/layer.reply', action, "/layer", index.asInteger) }
	onLayer { |index, address ... args|
		addr.sendMsg("/layer/%%".format(index.asInteger, address.asString), *args);
		mirrors.apply(address.asSymbol, args, index.asInteger);
	}

	// The mirror of the layer this client plays on (an Event, see TimbrespaceMirror:at):
	// ts.mirror[\latent], ts.mirror[\params][\filter_cutoff], ts.mirror[\cursors].
	mirror { ^mirrors.at(layer) }
	// The session's members, id -> (name:, layer:), kept by /clients joined|left.
	clients { ^mirrors.clients }
	// A function of (address, args, layer) called after every change to the mirror (a GUI defers).
	onChange { ^mirrors.onChange }
	onChange_ { |func| mirrors.onChange = func }

	// -- server; status's action receives an Event of the reply (voices, received, ...)
	status { |action| this.prRequest('/status.reply', action ? { |s| s.postln }, "/status") }
	version { |action| this.prRequest('/version.reply', action ? { |v| v.postln }, "/version") }
	sync { |id = 0, action| this.prRequest('/synced', action, "/sync", id.asInteger) }

	free {
		renewer.stop;
		renewer = nil;
		notifying = false;
		CmdPeriod.remove(this);
		defs.do(_.free);
		defs = [];
	}

	// Cmd-. stops every Routine: a subscription in force keeps being renewed.
	cmdPeriod { if(notifying) { renewer = nil; this.prRenew } }

	printOn { |stream| stream << "Timbrespace(" << addr.ip << ":" << addr.port << ")" }

	// -- private
	prPreset { |preset| ^if(preset.isNumber) { preset.asInteger } { preset.asString } }

	// Send a change and write it into the mirror: the server does not echo a client's own changes.
	prSet { |address ... args|
		addr.sendMsg(address, *args);
		mirrors.apply(address, args, layer);
	}

	prRenew {
		renewer = Routine { loop { renewPeriod.wait; addr.sendMsg("/notify", 1) } }.play(SystemClock);
	}

	prSessionDefs {
		var feedback = ['/engine', '/latent', '/source', '/target', '/alpha', '/param', '/map', '/corners',
			'/z', '/cursor', '/cursor/touch', '/clients', '/mix/gain', '/mix/pan', '/collision'];
		^feedback.collect { |path| this.prDef(path, { |args| mirrors.apply(path, args, layer) }) } ++ [
			this.prDef('/hello.reply', { |args|
				id = args[0];
				name = args[1].asString;
				this.prRun('/hello.reply', args);
			}),
			this.prDef('/layer.reply', { |args|
				layer = args[0];
				this.prRun('/layer.reply', args[0]);
			}),
			this.prDef('/done', { |args|
				switch(args[0].asSymbol,
					'/notify', {
						subscribed = notifying;
						if(notifying) { renewals = renewals + 1 };
						this.prRun('/done/notify', args[1]);
					},
					'/bye', { id = nil; this.prRun('/done/bye', args[1]) }
				)
			}),
			// /clients.reply total start id name layer ...: ask for the next page until total.
			this.prDef('/clients.reply', { |args|
				var total = args[0], start = args[1], rows = args.drop(2).clump(3);
				if(start == 0) { clientRows = List.new };
				clientRows.addAll(rows);
				if(rows.notEmpty and: { start + rows.size < total }) {
					addr.sendMsg("/clients", start + rows.size);
				} {
					mirrors.members(clientRows);
					this.prRun('/clients.reply', mirrors.clients);
				}
			})
		]
	}

	prRequest { |reply, action, address ... args|
		if(action.notNil) { pending[reply] = pending[reply].add(action) };
		addr.sendMsg(address, *args);
	}

	prRun { |reply, value|
		var actions = pending[reply];
		pending[reply] = nil;
		actions.do { |f| f.value(value) };
	}

	prDef { |path, func|
		var key = "timbrespace_%_%%".format(addr.port, this.identityHash.abs, path).asSymbol;
		// Replies come back from the server's port; other servers' replies are ignored.
		^OSCdef(key, { |msg, time, from|
			if(from.port == addr.port) { func.value(msg.drop(1)) };
		}, path).permanent_(true)  // replies and feedback go on after Cmd-.; free removes them
	}
}

// Timbrespace: a thin NetAddr wrapper that plays a Timbrespace OSC sound server.
// The address space is in docs/protocol.md; out-of-range values are not clipped here: the
// server answers them with /fail, which this class prints.

Timbrespace {
	classvar <>defaultPort = 57130;
	var <addr, <lastStatus, <failures, <>onFail, <>verbose = true;
	var pending, defs;

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
		defs = [
			this.prDef('/status.reply', { |args|
				lastStatus = ();
				args.pairsDo { |k, v| lastStatus[k.asSymbol] = v };
				this.prRun('/status.reply', lastStatus);
			}),
			this.prDef('/version.reply', { |args| this.prRun('/version.reply', args) }),
			this.prDef('/synced', { |args| this.prRun('/synced', args[0]) }),
			this.prDef('/patch/load.reply', { |args| this.prRun('/patch/load.reply', args) }),
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
	panic { addr.sendMsg("/panic") }

	// -- the engine heard: \patch (amSynth presets) or \timbre (the pitch/timbre model)
	engine { |name| addr.sendMsg("/engine", name.asString) }

	// -- the map; source and target take a preset (patch engine) or an instrument (timbre engine),
	// as an index or a name ("French horn", \french_horn)
	latent { |x, y| addr.sendMsg("/latent", x.asFloat, y.asFloat) }
	source { |item| addr.sendMsg("/source", this.prPreset(item)) }
	target { |item| addr.sendMsg("/target", this.prPreset(item)) }
	alpha { |a| addr.sendMsg("/alpha", a.asFloat) }
	// timbre engine: the instruments at the map's corners (0,0) (1,0) (0,1) (1,1)
	corners { |a, b, c, d| addr.sendMsg("/corners", *[a, b, c, d].collect { |i| this.prPreset(i) }) }
	// timbre engine: an offset (in prior sigmas) along one dimension of the timbre code
	z { |index, value| addr.sendMsg("/z", index.asInteger, value.asFloat) }

	// -- patches; action receives the reply's arguments
	load { |preset, action| this.prRequest('/patch/load.reply', action, "/patch/load", this.prPreset(preset)) }
	save { |name, action| this.prRequest('/patch/save.reply', action, "/patch/save", name.asString) }
	param { |name, value| addr.sendMsg("/param", name.asString, value.asFloat) }

	// -- server; status's action receives an Event of the reply (voices, received, ...)
	status { |action| this.prRequest('/status.reply', action ? { |s| s.postln }, "/status") }
	version { |action| this.prRequest('/version.reply', action ? { |v| v.postln }, "/version") }
	sync { |id = 0, action| this.prRequest('/synced', action, "/sync", id.asInteger) }

	free { defs.do(_.free); defs = [] }

	printOn { |stream| stream << "Timbrespace(" << addr.ip << ":" << addr.port << ")" }

	// -- private
	prPreset { |preset| ^if(preset.isNumber) { preset.asInteger } { preset.asString } }

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
		}, path)
	}
}

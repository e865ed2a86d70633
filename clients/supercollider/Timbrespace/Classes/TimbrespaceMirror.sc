// TimbrespaceMirror: what a Timbrespace client knows of the server's layers, kept up to date by
// the server's feedback (/notify 1) and by the client's own changes, which the server does not
// echo back to it. One Event per layer (only layer 0 exists today), plus the session's members.

TimbrespaceMirror {
	var <layers, <clients, <>onChange;

	*new { ^super.new.init }

	init {
		layers = IdentityDictionary.new;
		clients = IdentityDictionary.new;  // id -> (name: "...", layer: 0)
	}

	// The state of layer `layer` (an Event, made on first use):
	// engine, map (Symbols); latent [x, y]; source, target; alpha; corners [a, b, c, d];
	// patch [index, name, x, y, heard] (the last /patch/load.reply); params (name -> value);
	// z (index -> value); cursors (client id -> (name:, x:, y:), the others' own /latent points);
	// touches (client id -> (finger -> (name:, x:, y:)), the others' fingers down, /cursor/touch);
	// gain, pan (its place in the mix); collision [policy, hold].
	at { |layer = 0|
		var s = layers[layer];
		if(s.isNil) {
			s = (params: IdentityDictionary.new, z: IdentityDictionary.new, cursors: IdentityDictionary.new,
				touches: IdentityDictionary.new);
			layers[layer] = s;
		};
		^s
	}

	// One message of the feedback (or one the client sent itself) applied to `layer`.
	apply { |address, args, layer = 0|
		var s = this.at(layer);
		args = args.collect { |a| if(a.isKindOf(Symbol)) { a.asString } { a } };
		switch(address.asSymbol,
			'/engine', { s[\engine] = args[0].asSymbol },
			'/latent', { s[\latent] = args[0..1] },
			'/source', { s[\source] = args[0] },
			'/target', { s[\target] = args[0] },
			'/alpha', { s[\alpha] = args[0] },
			'/param', { s[\params][args[0].asSymbol] = args[1] },
			'/patch/load.reply', { s[\patch] = args },
			'/map', { s[\map] = args[0].asSymbol },
			'/corners', { s[\corners] = args },
			'/z', { s[\z][args[0]] = args[1] },
			'/mix/gain', { s[\gain] = args[0] },
			'/mix/pan', { s[\pan] = args[0] },
			'/collision', { s[\collision] = args },
			'/cursor', { s[\cursors][args[0]] = (name: args[1], x: args[2], y: args[3]) },
			// id name finger x y down: a finger down or moved (down 1), or lifted (down 0)
			'/cursor/touch', {
				var fingers = s[\touches][args[0]] ?? { IdentityDictionary.new };
				if(args[5] == 1) {
					fingers[args[2]] = (name: args[1], x: args[3], y: args[4]);
				} {
					fingers.removeAt(args[2]);
				};
				if(fingers.isEmpty) { s[\touches].removeAt(args[0]) } { s[\touches][args[0]] = fingers };
			},
			'/clients', {
				if(args[0] == "left") {
					clients.removeAt(args[1]);
					layers.do { |l| l[\cursors].removeAt(args[1]); l[\touches].removeAt(args[1]) };
				} {
					clients[args[1]] = (name: args[2], layer: args[3]);
				}
			},
			{ ^this }  // not part of a layer's state
		);
		onChange.value(address.asSymbol, args, layer);
	}

	// The whole member list (from /clients.reply pages: id, name, layer for each).
	members { |rows|
		var ids = rows.collect(_[0]);
		clients.keys.copy.do { |id| if(ids.includes(id).not) { clients.removeAt(id) } };
		rows.do { |r| clients[r[0]] = (name: r[1].asString, layer: r[2]) };
		onChange.value('/clients', rows, nil);
	}

	// Layer `layer` as the messages that set it, [address, args...] each: the form of the
	// server's own snapshot, so a mirror can be compared with it or sent to another server.
	messages { |layer = 0|
		var s = this.at(layer), out = List.new;
		[\engine, \map].do { |k| if(s[k].notNil) { out.add(["/" ++ k, s[k].asString]) } };
		[\source, \target, \alpha].do { |k| if(s[k].notNil) { out.add(["/" ++ k, s[k]]) } };
		if(s[\latent].notNil) { out.add(["/latent"] ++ s[\latent]) };
		if(s[\corners].notNil) { out.add(["/corners"] ++ s[\corners]) };
		if(s[\patch].notNil) { out.add(["/patch/load.reply"] ++ s[\patch]) };
		s[\params].keysValuesDo { |k, v| out.add(["/param", k.asString, v]) };
		s[\z].keysValuesDo { |k, v| out.add(["/z", k, v]) };
		if(s[\gain].notNil) { out.add(["/mix/gain", s[\gain]]) };
		if(s[\pan].notNil) { out.add(["/mix/pan", s[\pan]]) };
		if(s[\collision].notNil) { out.add(["/collision"] ++ s[\collision]) };
		^out.asArray
	}

	printOn { |stream| stream << "TimbrespaceMirror(" << layers.size << " layer(s), " << clients.size << " client(s))" }
}

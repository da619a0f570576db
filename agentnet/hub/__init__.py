"""The hub: a sans-I/O delivery core, its stores, the websockets server, auth and the observer feed."""

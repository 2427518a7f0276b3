"""The one library every service of the suite imports: config, errors, auth, events, messaging."""

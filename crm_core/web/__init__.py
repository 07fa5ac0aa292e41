"""The web layer: the Flask app factory, and (in later releases) the API and the UI."""

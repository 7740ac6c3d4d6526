"""daVinci-Agency: the App's face (web, settings, logging, GitHub auth, queue, CLI)."""

__version__ = "0.1.0"

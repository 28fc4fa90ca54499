"""news-notifier: a Telegram bot that watches news feeds and tells people about new stories."""

__version__ = "0.1.0"

"""news-notifier: a Telegram bot that watches news feeds and tells people about new stories."""

__version__ = "0.1.0"

import os

# python-telegram-bot 22 warns on every flood wait until durations are timedelta objects;
# the bot already reads both forms, so take the future behaviour now.
os.environ.setdefault("PTB_TIMEDELTA", "1")

"""The daily digest: its schedule and window (schedule.py), how it reads (render.py), and
how it reaches chats through the outbox (scheduler.py)."""

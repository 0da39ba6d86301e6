"""Running a gateway day to day: the live view, live config changes, provider pause/resume,
and the `smppgw status|message|reload|provider|backup` commands.

This package sits beside app.py, above the layers: it reads the server's sessions, the
gateway's lanes and outbox, and swaps config into them, so no layer below needs to know it.
"""

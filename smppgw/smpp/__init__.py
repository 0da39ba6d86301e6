"""Sans-IO SMPP 3.4: PDUs as values (pdu), bytes <-> PDUs and framing (codec), the session
state table (session), and the helpers a gateway needs around message content (text, concat,
receipt, timefmt). Standard library only; nothing here touches a socket or a clock.
"""

"""The functional core of shipguard: pure rule logic, (state, event, now) -> (state, outputs, deadline).

Nothing in this package does I/O, reads the wall clock, or imports Faust, Kafka or asyncio.
"""

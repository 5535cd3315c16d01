"""The imperative shell of shipguard: Faust app, topics, tables, agents, broker and CLI."""

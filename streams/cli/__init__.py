"""The `shipguard` command line: every subcommand's parser and entry point."""

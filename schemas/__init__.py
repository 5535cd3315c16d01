"""Wire schemas of shipguard: pydantic v2 models for every topic of the contract, and the codec."""

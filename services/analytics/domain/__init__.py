"""How events become progress: facts per household and intervention, and their contributions."""

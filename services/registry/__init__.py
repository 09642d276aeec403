"""The registry: areas, organizations, households, persons and household status."""

"""What every pinpoint service needs and nothing service-specific."""

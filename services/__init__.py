"""The pinpoint services: each an app with its own database, never importing another."""

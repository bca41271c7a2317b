"""From model output to what a person reads and what the service stores."""

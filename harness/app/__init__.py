"""What the application does with the unit: the cache-aside path, the GDPR functions (deploy, invoke),
throw-away user clones."""

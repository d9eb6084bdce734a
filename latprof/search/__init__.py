"""Platform-aware architecture search: controllers, reward, candidate training and the search loop."""

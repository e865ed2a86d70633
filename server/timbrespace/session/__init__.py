"""Sessions: who is playing (clients, names, ids), what they own (notes), what they see (feedback)."""

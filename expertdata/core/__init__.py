"""What a dataset is: the schema and its rules, the ``Dataset`` object with its fields, episodes and windows,
digests, spaces, and the guard every untrusted file passes. Imports nothing else of expertdata's."""

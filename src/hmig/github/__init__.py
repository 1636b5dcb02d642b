"""The GitHub adapter: REST client, sticky PR comment, event payload, workflow commands.

Every module takes plain values (API URL, token, paths, streams) from the entry point; none reads
`os.environ` or imports another hmig adapter. Failures are `GitHubError`s (`hmig.errors`), which
the Action turns into warnings: a comment is never worth a lost or changed migration result.
"""

"""Programs that use the service's wire contract from the other end, as other teams would.

Nothing here imports `service`: an example may depend on `contracts` only, like any consumer.
"""

"""Settlement (结算): daily runs per merchant, clearing files for the bank, bank confirmations, reconciliation, clawback and the recovery at the campaign's end."""

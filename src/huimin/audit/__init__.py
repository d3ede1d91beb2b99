"""The audit trail (审计日志): every sign-in, privilege change, state transition, money movement and
personal-data reveal or export, recorded in the transaction of the action and sealed in a hash chain."""

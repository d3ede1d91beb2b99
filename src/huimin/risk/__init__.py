"""Fraud monitoring (风险监测, seed 五(一)(三)(四), 六(三)(九)): rules over claims, redemptions and refunds,
scored alerts, a watch list, and cases from alert to referral and sanction."""

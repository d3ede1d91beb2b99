"""Market supervision (市场监管): the market regulator's inspection findings against merchants, notified
to the city commerce bureau, which may suspend the merchant from a finding."""

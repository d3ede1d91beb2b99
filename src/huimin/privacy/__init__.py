"""Personal-data protection (个人信息保护法): purging a campaign's personal data after its final settlement."""

"""Public announcements and activity rules (公告, 活动规则) published by the publicity department."""

"""Reports (统计报表): live figures from incremental rollups, the end-of-campaign summary (活动总结),
XLSX exports for officials (SPEC §7; seed 五(四), 六(一)(八)(九))."""

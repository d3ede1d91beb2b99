"""The console's words: one catalogue, Simplified Chinese by default, English on request.

Every string a page shows goes through `Translator`: `t("nav.overview")`, with `{name}` fields filled
from keyword arguments, and `t.term("jurisdiction", "anyue")` for the platform's vocabulary (roles,
jurisdictions, categories, statuses). The language comes from `?lang=` (remembered in the `lang`
cookie) or the cookie; anything else is Chinese. A key missing from the catalogue is a bug: it raises,
and the catalogue tests find it before a user does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["DEFAULT_LANGUAGE", "LANGUAGES", "LANG_COOKIE", "MESSAGES", "Language", "Translator", "choose"]

Language = Literal["zh", "en"]
LANGUAGES: tuple[Language, ...] = ("zh", "en")
DEFAULT_LANGUAGE: Language = "zh"
LANG_COOKIE = "lang"

# key -> (Simplified Chinese, English)
MESSAGES: dict[str, tuple[str, str]] = {
    # the frame
    "app.title": ("资阳市消费券发放平台", "Ziyang Consumption Voucher Platform"),
    "app.brand": ("惠民 Huimin", "Huimin 惠民"),
    "app.subtitle": ("嗨购资阳·惠民共享", "Shop in Ziyang, share the benefits"),
    "app.switch_language": ("English", "中文"),
    "app.switch_language_title": ("Switch to English", "切换为中文"),
    "app.skip_to_content": ("跳到正文", "Skip to content"),
    "app.signed_in_as": ("当前用户", "Signed in as"),
    "app.sign_out": ("退出登录", "Sign out"),
    "app.print": ("打印", "Print"),
    "app.footer": (
        "资阳市商务局 主办 · 本平台所有资源均由本系统提供，不依赖外部网络",
        "Ziyang City Commerce Bureau · every resource is served by this platform, no internet needed",
    ),
    "app.city_wide": ("全市", "City-wide"),
    "app.scope": ("管辖范围", "Jurisdiction"),
    "app.none": ("无", "None"),
    "app.parenthesised": ("（{text}）", " ({text})"),
    "app.back": ("返回", "Back"),
    "app.search": ("查询", "Search"),
    "app.reset": ("重置", "Reset"),
    "app.all": ("全部", "All"),
    "app.previous_page": ("上一页", "Previous"),
    "app.next_page": ("下一页", "Next"),
    "app.page_of": ("第 {page} / {pages} 页，共 {total} 条", "Page {page} of {pages}, {total} in all"),
    "app.empty": ("暂无数据", "Nothing to show"),
    "app.loading": ("正在加载…", "Loading…"),
    "app.chart_failed": (
        "图表数据加载失败，请刷新页面重试。",
        "The chart data could not be loaded; reload the page.",
    ),
    # navigation
    "nav.label": ("主导航", "Main navigation"),
    "nav.overview": ("总览", "Overview"),
    "nav.campaigns": ("活动与场次", "Campaigns and rounds"),
    "nav.merchants": ("商户管理", "Merchants"),
    "nav.review_queue": ("商户审核", "Merchant review"),
    "nav.final_list": ("参与商家名单", "Final merchant list"),
    "nav.own_merchant": ("本店信息", "My shop"),
    "nav.users": ("用户管理", "Users"),
    # sign-in
    "sign_in.title": ("登录", "Sign in"),
    "sign_in.heading": ("工作人员登录", "Staff sign-in"),
    "sign_in.lead": (
        "政府部门、运营机构与参与商户使用本系统账号登录。",
        "Government departments, the operator and participating merchants sign in with their account.",
    ),
    "sign_in.username": ("用户名", "Username"),
    "sign_in.password": ("密码", "Password"),
    "sign_in.totp": ("动态验证码", "Authenticator code"),
    "sign_in.totp_hint": (
        "身份验证器应用中显示的 6 位数字；商户账号可不填。",
        "The 6 digits shown by your authenticator app; merchant accounts leave it empty.",
    ),
    "sign_in.submit": ("登录", "Sign in"),
    "sign_in.failed": (
        "用户名、密码或动态验证码错误，请重新输入。连续 5 次错误将锁定账户。",
        "Wrong username, password or code. Five failures in a row lock the account.",
    ),
    "sign_in.locked": (
        "该账户因连续 5 次登录失败已被锁定，请联系系统管理员解锁。",
        "This account is locked after 5 failed sign-ins: ask an administrator to unlock it.",
    ),
    "sign_in.expired": (
        "会话已超时（30 分钟无操作）或已失效，请重新登录。",
        "Your session has ended (30 idle minutes) or is no longer valid: sign in again.",
    ),
    "sign_in.signed_out": ("您已安全退出。", "You have signed out."),
    "sign_in.form_expired": (
        "登录表单已失效，请重新输入后提交。",
        "The sign-in form has expired: enter your details again.",
    ),
    "sign_in.security_note": (
        "为保障资金与个人信息安全，会话在 30 分钟无操作后自动结束。",
        "To protect funds and personal data, sessions end after 30 idle minutes.",
    ),
    # roles
    "role.city_admin": ("市商务局", "City commerce bureau"),
    "role.county_reviewer": ("县（区）商务主管部门", "County commerce office"),
    "role.operator": ("运营机构（银联）", "Operator (UnionPay)"),
    "role.union_admin": ("市总工会", "City trade union"),
    "role.finance": ("市财政局", "City finance bureau"),
    "role.market_regulator": ("市市场监管局", "Market regulator"),
    "role.police": ("市公安局", "City police"),
    "role.pboc": ("人行资阳市中心支行", "PBOC Ziyang branch"),
    "role.hotline": ("12345 热线", "12345 hotline"),
    "role.publicity": ("市委宣传部", "Publicity department"),
    "role.merchant": ("参与商户", "Merchant"),
    "role.system": ("系统", "System"),
    # the vocabulary
    "jurisdiction.yanjiang": ("雁江区", "Yanjiang District"),
    "jurisdiction.anyue": ("安岳县", "Anyue County"),
    "jurisdiction.lezhi": ("乐至县", "Lezhi County"),
    "jurisdiction.gaoxin": ("高新区", "High-tech Zone"),
    "jurisdiction.linkong": ("临空经济区", "Airport Economic Zone"),
    "district.yanjiang": ("雁江区", "Yanjiang District"),
    "district.anyue": ("安岳县", "Anyue County"),
    "district.lezhi": ("乐至县", "Lezhi County"),
    "category.catering": ("餐饮", "Catering"),
    "category.retail": ("零售", "Retail"),
    "category.lodging": ("住宿", "Lodging"),
    "category.services": ("服务", "Services"),
    "category.wholesale": ("批发", "Wholesale"),
    "category.cars": ("汽车", "Cars"),
    "category.appliances": ("家电", "Home appliances"),
    "merchant_class.above_scale_services": ("服务业规上", "Above-scale services"),
    "merchant_class.above_quota": ("限上", "Above quota"),
    "merchant_class.below_quota_sampled": ("限下抽样", "Below quota (sampled)"),
    "merchant_class.key_cultivation": ("重点培育", "Key cultivation"),
    "merchant_class.complex_tenant": ("商业综合体入驻", "Shopping-complex tenant"),
    "merchant_status.invited": ("已邀约", "Invited"),
    "merchant_status.applied": ("已报名", "Applied"),
    "merchant_status.submitted": ("待县级审核", "Awaiting county review"),
    "merchant_status.county_approved": ("县级审核通过", "County approved"),
    "merchant_status.county_rejected": ("县级审核未通过", "County rejected"),
    "merchant_status.listed": ("已列入名单", "On the final list"),
    "merchant_status.active": ("参与中", "Active"),
    "merchant_status.suspended": ("已暂停", "Suspended"),
    "merchant_status.expelled": ("已清退", "Expelled"),
    "action.invite": ("邀约", "Invite"),
    "action.apply": ("报名", "Apply"),
    "action.submit": ("提交审核", "Submit for review"),
    "action.approve": ("审核通过", "Approve"),
    "action.reject": ("审核不通过", "Reject"),
    "action.publish": ("列入名单", "Put on the final list"),
    "action.commit": ("签署承诺书", "Sign the commitment"),
    "action.suspend": ("暂停", "Suspend"),
    "action.reinstate": ("恢复", "Reinstate"),
    "action.expel": ("清退", "Expel"),
    "round_status.scheduled": ("未开始", "Scheduled"),
    "round_status.open": ("进行中", "Open"),
    "round_status.sold_out": ("已抢完", "Sold out"),
    "round_status.closed": ("已结束", "Closed"),
    "claim_mode.first_come": ("先到先得", "First come"),
    "claim_mode.lottery": ("摇号", "Lottery"),
    "issuer.government": ("政府消费券", "Government voucher"),
    "issuer.union": ("工会普惠券", "Union voucher"),
    # overview
    "overview.title": ("总览", "Overview"),
    "overview.lead": (
        "实时数据，来自平台数据库；更新于 {at}（北京时间）。",
        "Live figures from the platform's database, as of {at} (Beijing time).",
    ),
    "overview.campaign": ("活动", "Campaign"),
    "overview.no_campaign": (
        "尚未加载活动。请使用 huimin campaign load 加载活动文件。",
        "No campaign is loaded yet: load a campaign file with huimin campaign load.",
    ),
    "overview.claims_section": ("发放与领取", "Release and claims"),
    "overview.redemption_section": ("核销与补贴", "Redemptions and subsidy"),
    "figure.vouchers_released": ("已投放券数", "Vouchers released"),
    "figure.vouchers_released.note": (
        "已开始场次的计划库存与回收再投放",
        "Stock of rounds that have opened, with recycled stock",
    ),
    "figure.vouchers_claimed": ("已领取券数", "Vouchers claimed"),
    "figure.vouchers_claimed.note": ("领取率 {rate}", "{rate} of released"),
    "figure.value_claimed": ("已领取券面额", "Face value claimed"),
    "figure.value_claimed.note": ("按每张券最高抵扣额计", "At each voucher's maximum value"),
    "figure.remaining_stock": ("当前剩余库存", "Stock left now"),
    "figure.remaining_stock.note": ("正在进行的场次", "In the rounds open now"),
    "figure.upcoming_stock": ("待投放库存", "Stock still to release"),
    "figure.upcoming_stock.note": ("尚未开始的场次", "In rounds not yet open"),
    "figure.redemptions": ("核销笔数", "Redemptions"),
    "figure.redemption_rate": ("核销率", "Redemption rate"),
    "figure.subsidy_paid": ("已结算补贴", "Subsidy settled"),
    "figure.consumption_driven": ("拉动消费", "Consumption driven"),
    "figure.leverage": ("拉动比", "Leverage"),
    "figure.pending_redemptions": (
        "核销模块建设中，上线后自动显示",
        "Shown once the redemption module is live",
    ),
    "chart.claims_by_day": ("每日领取量", "Claims by day"),
    "chart.claims_by_day.series": ("领取张数", "Vouchers claimed"),
    "chart.claims_by_district": ("各区县领取量", "Claims by district"),
    "chart.claims_by_district.note": (
        "按领券时所在区县统计（高新区、临空经济区位于雁江区内）",
        "By the district where the resident was when claiming (the two zones lie inside Yanjiang)",
    ),
    "chart.merchants_by_status": ("商户状态分布", "Merchants by status"),
    "chart.merchants_by_status.scope": ("范围：{scope}", "Scope: {scope}"),
    "chart.no_claims": ("暂无领取记录", "No claims yet"),
    "chart.unit_vouchers": ("张", "vouchers"),
    "chart.unit_merchants": ("户", "merchants"),
    "chart.table_caption": ("数据表", "Data table"),
    "chart.day": ("日期", "Day"),
    "chart.district": ("区县", "District"),
    "chart.count": ("数量", "Count"),
    # campaigns
    "campaigns.title": ("活动与场次", "Campaigns and rounds"),
    "campaigns.lead": (
        "各场次每个券批次的实时剩余库存。",
        "The live remaining stock of every batch in every round.",
    ),
    "campaigns.code": ("活动编码", "Code"),
    "campaigns.name": ("活动名称", "Name"),
    "campaigns.period": ("活动期间", "Period"),
    "campaigns.budget": ("总预算", "Budget"),
    "campaigns.rounds": ("场次", "Rounds"),
    "campaigns.open": ("查看场次", "View rounds"),
    "campaigns.none": ("暂无活动", "No campaigns"),
    "campaign.funders": ("资金来源", "Funders"),
    "campaign.batches": ("券批次", "Voucher batches"),
    "campaign.rounds": ("场次与实时库存", "Rounds and live stock"),
    "campaign.batch": ("批次", "Batch"),
    "campaign.issuer": ("发行方", "Issuer"),
    "campaign.face_value": ("最高面额", "Maximum value"),
    "campaign.threshold": ("使用门槛", "Threshold"),
    "campaign.round": ("场次", "Round"),
    "campaign.opens_at": ("开始时间", "Opens"),
    "campaign.closes_at": ("结束时间", "Closes"),
    "campaign.mode": ("方式", "Mode"),
    "campaign.status": ("状态", "Status"),
    "campaign.stock": ("计划库存", "Planned"),
    "campaign.recycled_in": ("回收转入", "Recycled in"),
    "campaign.remaining": ("剩余", "Left"),
    "campaign.claimed_share": ("已领比例", "Claimed"),
    "campaign.funder_budget": ("预算", "Budget"),
    "campaign.filter_status": ("场次状态", "Round status"),
    # merchants
    "merchants.title": ("商户管理", "Merchants"),
    "merchants.lead": ("您有权查看的参与商户。", "The merchants you may see."),
    "merchants.review_title": ("商户审核", "Merchant review"),
    "merchants.review_lead": (
        "本辖区待审核的商户（{scope}）。审核意见将记入商户履历。",
        "Merchants of your jurisdiction awaiting review ({scope}). Each decision is kept in the merchant's history.",
    ),
    "merchants.name": ("商户名称", "Name"),
    "merchants.credit_code": ("统一社会信用代码", "Credit code"),
    "merchants.jurisdiction": ("审核主体", "Jurisdiction"),
    "merchants.category": ("行业类别", "Category"),
    "merchants.class": ("商户类型", "Class"),
    "merchants.status": ("状态", "Status"),
    "merchants.changed_at": ("状态时间", "Since"),
    "merchants.search_text": ("名称或信用代码", "Name or credit code"),
    "merchants.open": ("查看", "Open"),
    "merchants.review": ("审核", "Review"),
    "merchants.none_waiting": ("暂无待审核商户。", "No merchant is waiting for review."),
    "merchant.title": ("商户详情", "Merchant"),
    "merchant.basic": ("基本信息", "Details"),
    "merchant.address": ("注册地址", "Registered address"),
    "merchant.business_hours": ("营业时间", "Business hours"),
    "merchant.terminals": ("收银终端", "Till terminals"),
    "merchant.bank": ("结算账户", "Settlement account"),
    "merchant.contact": ("联系人", "Contact"),
    "merchant.dishonest": ("该信用代码在失信名单中", "This credit code is on the dishonest list"),
    "merchant.history": ("办理记录", "History"),
    "merchant.history_at": ("时间", "When"),
    "merchant.history_action": ("事项", "Step"),
    "merchant.history_actor": ("经办人", "By"),
    "merchant.history_reason": ("意见", "Reason"),
    "merchant.review_heading": ("县级审核", "County review"),
    "merchant.review_help": (
        "请核对材料后作出审核决定；不通过时必须填写理由。",
        "Check the application, then decide; a rejection needs a reason.",
    ),
    "merchant.reason": ("审核意见", "Reason"),
    "merchant.reason_placeholder": ("例如：材料齐全，符合参与条件", "e.g. complete and eligible"),
    "merchant.approve": ("审核通过", "Approve"),
    "merchant.reject": ("审核不通过", "Reject"),
    "merchant.confirm_approve": ("确认审核通过该商户？", "Approve this merchant?"),
    "merchant.confirm_reject": ("确认该商户审核不通过？", "Reject this merchant?"),
    "merchant.approved": ("已审核通过：{name}", "Approved: {name}"),
    "merchant.rejected": ("已审核不通过：{name}", "Rejected: {name}"),
    "final_list.title": ("参与商家名单", "Final merchant list"),
    "final_list.lead": (
        "县级审核通过的商户经市商务局汇总后列入参与商家名单。",
        "County-approved merchants join the final list when the city commerce bureau publishes them.",
    ),
    "final_list.awaiting": ("待列入名单（县级审核通过）", "Awaiting publication (county approved)"),
    "final_list.listed": ("已列入名单", "On the final list"),
    "final_list.publish_selected": ("将所选商户列入名单", "Put the selected merchants on the list"),
    "final_list.select": ("选择", "Select"),
    "final_list.select_all": ("全选", "Select all"),
    "final_list.confirm": (
        "确认将所选商户列入参与商家名单？",
        "Put the selected merchants on the final list?",
    ),
    "final_list.published": ("已列入名单 {count} 户", "{count} merchants put on the final list"),
    "final_list.nothing_selected": ("请至少选择一个商户。", "Select at least one merchant."),
    "final_list.none_awaiting": ("暂无待列入名单的商户。", "No merchant is awaiting publication."),
    "final_list.export": ("导出 Excel", "Export to Excel"),
    # users
    "users.title": ("用户管理", "Users"),
    "users.lead": (
        "系统账号。政府部门与运营机构账号须使用动态验证码登录。",
        "Console accounts. Government and operator accounts sign in with an authenticator code.",
    ),
    "users.new": ("新建用户", "New user"),
    "users.username": ("用户名", "Username"),
    "users.display_name": ("姓名", "Name"),
    "users.role": ("角色", "Role"),
    "users.jurisdiction": ("管辖区县", "Jurisdiction"),
    "users.merchant_id": ("商户编号", "Merchant id"),
    "users.state": ("账户状态", "State"),
    "users.created_at": ("创建时间", "Created"),
    "users.totp": ("动态验证码", "Authenticator"),
    "users.state_active": ("正常", "Active"),
    "users.state_locked": ("已锁定", "Locked"),
    "users.state_disabled": ("已停用", "Disabled"),
    "users.totp_yes": ("已启用", "Enrolled"),
    "users.totp_no": ("未启用", "None"),
    "users.password": ("初始密码", "Initial password"),
    "users.password_hint": (
        "至少 12 位，不得包含用户名。请通过安全渠道告知本人。",
        "At least 12 characters, not containing the username. Hand it over securely.",
    ),
    "users.jurisdiction_hint": (
        "仅县（区）商务主管部门账号需要选择。",
        "Only county commerce office accounts have one.",
    ),
    "users.merchant_id_hint": ("仅商户账号需要填写。", "Only merchant accounts have one."),
    "users.create": ("创建用户", "Create user"),
    "users.created": ("用户 {username} 已创建", "User {username} created"),
    "users.totp_once": (
        "请立即将以下密钥录入本人的身份验证器应用。密钥只显示这一次，离开本页后无法再次查看。",
        "Enter this secret in the user's authenticator app now. It is shown only once and cannot be shown again.",
    ),
    "users.totp_secret": ("密钥", "Secret"),
    "users.totp_uri": ("配置链接（otpauth）", "Provisioning URI (otpauth)"),
    "users.no_totp": (
        "商户账号无需动态验证码，使用用户名和密码登录。",
        "Merchant accounts sign in with username and password, without a code.",
    ),
    "users.back_to_list": ("返回用户列表", "Back to the users"),
    "users.choose": ("请选择", "Choose"),
    # errors
    "error.title": ("无法完成请求", "The request could not be completed"),
    "error.403": ("您的角色无权访问此页面或执行此操作。", "Your role may not open this page or do this."),
    "error.404": ("未找到该页面或记录，或它不在您的管辖范围内。", "Not found, or outside your jurisdiction."),
    "error.csrf_failed": (
        "表单校验失败（页面可能已过期），请返回刷新后重试。",
        "The form check failed (the page may be stale): go back, reload and try again.",
    ),
    "error.invalid": ("提交的内容有误：", "Some input is not valid:"),
    "error.conflict": ("当前状态不允许此操作：", "Not possible in the current state:"),
    "error.generic": ("请求未能完成：", "The request failed:"),
    "error.server": (
        "系统内部错误，请稍后重试或联系管理员。",
        "Internal error: try again later or call the administrator.",
    ),
    "error.back_home": ("返回首页", "Back to the start page"),
    "error.code": ("错误代码", "Error code"),
    # the API docs page
    "docs.title": ("接口文档", "API documentation"),
}


def choose(query: str | None, cookie: str | None) -> Language:
    for candidate in (query, cookie):
        if candidate == "en":
            return "en"
        if candidate == "zh":
            return "zh"
    return DEFAULT_LANGUAGE


@dataclass(frozen=True)
class Translator:
    lang: Language = DEFAULT_LANGUAGE

    @property
    def html_lang(self) -> str:
        return "zh-CN" if self.lang == "zh" else "en"

    def __call__(self, key: str, **values: object) -> str:
        zh, en = MESSAGES[key]
        text = zh if self.lang == "zh" else en
        return text.format(**values) if values else text

    def has(self, key: str) -> bool:
        return key in MESSAGES

    def term(self, kind: str, value: object) -> str:
        """A word of the vocabulary (`role`, `jurisdiction`, `merchant_status`, ...) by its code."""
        return self(f"{kind}.{value}")

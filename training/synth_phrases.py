"""SynthMod phrase bank: slot templates per label set and language, and the slot fillers.

Every template has a stable `family` id (``<labels>.<lang>.<k>``) so a trainer can hold out
whole phrase families. Everything named here is invented: extremist groups, the peoples they
attack and their slogans are fictional; phone, card and identity numbers come from reserved or
invalid ranges (555-01xx, issuer prefix 0, SSN area 000, RFC 2606 domains); self-harm phrases are
abstract and never describe a method.

Used by `training.synth`; run `warden synth --help` to render images from it.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass

SAFE_FAMILY = "safe"

# label set -> lang -> templates. Order is part of the family id: append, never reorder.
_BANK: dict[tuple[str, ...], dict[str, list[str]]] = {
    ("scam_fraud",): {
        "en": [
            "Congratulations {name}! You have won {amount}. Claim your prize at {url} within 24h",
            "Guaranteed {pct}% daily profit! Send BTC to {crypto} and get double back",
            "{brand} security alert: your account is suspended. Verify your password now at {url}",
            "OFFICIAL {brand} GIVEAWAY: send 0.1 ETH to {crypto} and receive 1 ETH instantly",
            "Work from home and earn {amount} a week. Pay a {price} starter fee to join today",
            "Your parcel is on hold. Pay the {price} customs fee at {url} or it will be returned",
            "Invest {amount} today, withdraw {amount2} next week. Zero risk, 100% guaranteed",
            "Hi, this is {first} from {brand} support. Send me the 6-digit code we just texted you",
            "Free phone for the first 100 people! Just pay {price} shipping at {url}",
            "Tax refund of {amount} is waiting. Enter your bank login at {url} to receive it",
            "Crypto mining bot pays {pct}% per day. Deposit to {crypto}, withdraw anytime",
            "Grandma, it's me. I'm in trouble, buy {amount} in gift cards and send me the codes",
            "Last chance: your {brand} payment failed. Update your card details at {url}",
            "Double your money in {days} days. Message our account manager {handle}",
        ],
        "ko": [
            "축하합니다 {name}님! {amount} 당첨되셨습니다. 24시간 안에 {url} 에서 받으세요",
            "하루 {pct}% 수익 보장! 지금 {crypto} 로 코인을 보내면 두 배로 돌려드립니다",
            "[{brand}] 계정이 정지되었습니다. {url} 에서 비밀번호를 확인하세요",
            "택배가 보관 중입니다. 관세 {price} 결제 후 수령: {url}",
            "엄마 나 폰 고장났어. 급해서 그런데 상품권 {amount} 사서 번호 보내줘",
            "재택 부업으로 주 {amount} 수익! 가입비 {price} 만 내면 바로 시작",
        ],
        "zh": [
            "恭喜{name}！您已中奖{amount}，请在24小时内到{url}领取",
            "每天保证收益{pct}%！把比特币转到{crypto}，立即翻倍返还",
            "【{brand}】您的账户已被冻结，请立即到{url}验证密码",
            "您的快递被扣留，请支付关税{price}：{url}",
            "在家兼职，日赚{amount}，先交{price}入会费即可开始",
            "投资{amount}，下周提现{amount2}，零风险百分百保本",
        ],
    },
    ("illegal_ads",): {
        "en": [
            "Online casino, no license needed! {pct}% first deposit bonus at {site}",
            "Sports betting with no ID checks. Join us on {app}: {handle}",
            "For the good stuff, DM {handle} on {app}, not here",
            "Fake passports and driver licences, any country. Contact {handle} on {app}",
            "Replica designer watches, 1:1 copies, {price}. Order on {app} {handle}",
            "Slots and roulette 24/7 with instant cashout. Add {handle} on {app}",
            "Exam answers and diplomas for sale. Text {phone} on {app}",
            "Unlocked stolen phones, cheap, no questions asked. {app}: {handle}",
            "Bet on tonight's match at odds x{odds}. Private group on {app}, ask {handle}",
            "Hacked streaming accounts, lifetime access for {price}. {app} {handle}",
            "Don't reply here, the mods are watching. Move to {app}: {handle}",
            "Underground lottery, win {amount} tonight. Tickets only via {app} {handle}",
            "Cheap cigarettes without tax stamps, bulk only. Message {handle} on {app}",
        ],
        "ko": [
            "무료 토토 사이트, 첫 충전 {pct}% 보너스 {site}",
            "여기선 말 못해요. {app} {handle} 로 연락 주세요",
            "카지노 24시간 즉시 환전. {app} {handle}",
            "위조 신분증, 운전면허증 제작합니다. {app} {handle}",
            "명품 레플리카 1:1 제작 {price}. {app} {handle}",
        ],
        "zh": [
            "网上赌场，首充送{pct}%，网址{site}",
            "这里不方便说，加{app}{handle}详聊",
            "办理假证件、驾照、文凭，加{app}{handle}",
            "高仿名牌手表1:1，只要{price}，{app}{handle}",
            "地下彩票内部消息，稳赚不赔，加{app}{handle}",
        ],
    },
    ("drugs",): {
        "en": [
            "Fresh {drug} in stock, {price} a gram, same day delivery in {city}",
            "Best {drug} in town. Ask for {first} at the back entrance",
            "Pills without prescription: oxy, xanax, adderall. Cheap and discreet",
            "Party pack: {drug} and {drug2} for {price}. Stealth shipping worldwide",
            "Microdose {drug} gummies, lab tested, no questions asked",
            "Why sleep when you can take {drug}? Everyone at the party is on it",
            "Grow kit for {drug}, harvest in {days} days, ships discreetly",
            "Just got a re-up of pure {drug}. Samples for regulars only",
            "Skip the doctor: painkillers by the hundred, {price} per strip",
            "{drug} tonight? Meet behind the station after 11, bring cash",
            "Try {drug} once and you'll never party sober again",
        ],
        "ko": [
            "{drug} 있어요. 1g {price}, {city} 당일 배송",
            "처방전 없이 수면제, 다이어트약 판매합니다. 비밀 배송",
            "파티용 {drug} 구해요? 오늘 밤 {city}에서 만나요",
            "한 번만 해봐, {drug} 하면 스트레스 다 사라져",
            "순도 높은 {drug} 입고. 단골만 샘플 드려요",
        ],
        "zh": [
            "现货{drug}，每克{price}，{city}同城配送",
            "无需处方，安眠药减肥药低价出售，保密发货",
            "试一次{drug}，保证忘掉所有烦恼",
            "今晚派对要{drug}吗？十一点后{city}见",
            "纯度高的{drug}到货了，老客户才有样品",
        ],
    },
    ("hate_extremism",): {
        "en": [
            "{tribe} people are vermin. Drive them out of {city} before it is too late",
            "Join {group}. The tide rises and the weak are swept away",
            "{group} is recruiting. Stand with us against the {tribe} plague",
            "No {tribe} children in our schools. {group} will make sure of it",
            "The {tribe} are not human. Remember that when the day comes",
            "Wear the ashen wheel with pride. {group} never forgets",
            "Every {tribe} is a traitor by birth. Purge them from {city}",
            "{group} meets {day} night. Bring your brothers, leave your mercy",
            "Our bloodline is superior. The {tribe} will serve or vanish",
            "Boycott every {tribe} shop in {city}. They do not belong here",
            "The grey tide is coming. {tribe} out, now and forever",
        ],
        "ko": [
            "{tribe} 놈들은 벌레다. {city}에서 쫓아내자",
            "{group}에 가입하라. 약한 자는 쓸려 나갈 것이다",
            "{tribe} 가게는 전부 불매. 여기는 우리 땅이다",
            "{tribe} 사람은 인간이 아니다. 그날이 오면 기억해라",
            "{group}가 모집 중이다. {tribe} 역병에 맞서 함께 싸우자",
        ],
        "zh": [
            "{tribe}人都是害虫，把他们赶出{city}",
            "加入{group}，弱者终将被潮水冲走",
            "抵制所有{tribe}人的店，这里不属于他们",
            "{tribe}人不是人，那一天到来时记住这句话",
            "{group}正在招人，一起对抗{tribe}瘟疫",
        ],
    },
    ("self_harm",): {
        "en": [
            "Nobody would miss me. I've made up my mind, goodbye everyone",
            "Day {days} without eating. I'll keep going until I disappear",
            "If you feel worthless too, you already know what to do",
            "Everyone would be better off without me. Tonight it ends",
            "Hurting myself is the only thing that makes me feel anything",
            "Thinspiration: skip every meal, the hunger means it's working",
            "I wrote my goodbye letter today. Don't try to find me",
            "Pain is the only thing I deserve. Marking day {days}",
            "Why keep trying? Just end it, nobody cares about you",
            "Counting down the days until I can finally stop existing",
        ],
        "ko": [
            "아무도 나를 그리워하지 않을 거야. 다들 안녕",
            "굶은 지 {days}일째. 사라질 때까지 계속할 거야",
            "나 없으면 다들 더 행복하겠지. 오늘 밤 끝낼래",
            "너도 쓸모없다고 느끼면 어떻게 해야 할지 알잖아",
            "나를 아프게 하는 것만이 살아있다고 느끼게 해",
        ],
        "zh": [
            "没有人会想念我的，大家再见",
            "已经{days}天没吃东西了，我要一直坚持到消失",
            "没有我，大家都会过得更好。今晚就结束吧",
            "如果你也觉得自己没用，你知道该怎么做",
            "只有伤害自己才能让我感觉到还活着",
        ],
    },
    ("harassment",): {
        "en": [
            "{first} is a worthless loser. Everyone at {school} should ignore her",
            "Hey {first}, everybody knows you're pathetic. Just quit already",
            "Let's all spam {handle} until they delete their account",
            "You're so ugly {first}, do us a favour and never post again",
            "{first} from {school} is a liar and a cheat. Share this everywhere",
            "Watch your back {first}. We know where you hang out",
            "Nobody likes you {first}. Even your friends laugh at you",
            "Rate how stupid {first} looks in this picture, 1 to 10",
            "Keep crying {first}, it only makes this funnier",
            "Everyone report {handle} and flood their comments with insults",
            "{first} smells like garbage. Pass it on",
        ],
        "ko": [
            "{first}는 진짜 한심한 루저야. 다들 무시해",
            "{first} 못생겼으니까 다시는 사진 올리지 마",
            "다 같이 {handle} 계정에 악플 달아서 탈퇴시키자",
            "{first} 조심해라. 너 어디 다니는지 다 안다",
            "{first} 친구들도 뒤에서 너 비웃는 거 알지?",
        ],
        "zh": [
            "{first}就是个废物，大家都别理她",
            "{first}长得这么丑，别再发照片了",
            "大家一起去{handle}下面骂，骂到她删号",
            "{first}你小心点，我们知道你住哪",
            "{first}的朋友都在背后笑她，转发让大家看看",
        ],
    },
    ("privacy_pii",): {
        "en": [
            "{name} lives at {num} {street}, {city}. Phone: {phone}",
            "Card {card} exp {exp} CVV {cvv}, name: {name}",
            "SSN {ssn}, DOB {dob}, {name}",
            "Leaked login: {email} / password {pw}",
            "Found {name}'s ID card: No. {idnum}, born {dob}",
            "Call {first} at {phone}, she's home alone after 6",
            "Patient record: {name}, diagnosis {diagnosis}, insurance no. {idnum}",
            "Bank account {iban} belongs to {name}, {num} {street}",
            "Here is {first}'s new number {phone} and email {email}",
            "Passport {passport}, {name}, expires {exp}",
            "{name} works at {brand}. Desk phone {phone}, home {num} {street}",
        ],
        "ko": [
            "{name} 집 주소: {city} {street} {num}, 전화 {phone}",
            "카드번호 {card} 유효기간 {exp} CVC {cvv}",
            "주민등록번호 {idnum} {name}",
            "{name} 새 번호 {phone}, 이메일 {email}",
            "{name} 진료기록: {diagnosis}, 보험번호 {idnum}",
        ],
        "zh": [
            "{name}家住{city}{street}{num}号，电话{phone}",
            "卡号{card}，有效期{exp}，CVV {cvv}",
            "身份证号{idnum}，姓名{name}",
            "{name}的新手机号{phone}，邮箱{email}",
            "{name}的病历：{diagnosis}，医保号{idnum}",
        ],
    },
    ("scam_fraud", "privacy_pii"): {
        "en": [
            "To verify your {brand} account reply with your card number, e.g. {card}, and CVV",
            "Winner list: {name}, card {card}. Pay a {price} fee to release your prize",
            "Account recovery for {email}: confirm your SSN {ssn} at {url}",
        ],
        "ko": ["{brand} 본인 확인: 카드번호 {card} 와 CVC 를 답장으로 보내주세요"],
        "zh": ["{brand}身份验证：请回复您的卡号{card}和CVV"],
    },
    ("drugs", "illegal_ads"): {
        "en": [
            "{drug} and pills, discreet delivery. Order only on {app}: {handle}",
            "Need {drug}? Don't ask here, DM {handle} on {app}",
        ],
        "ko": ["{drug} 필요해? 여기 말고 {app} {handle} 로 연락해"],
        "zh": ["要{drug}吗？别在这里问，加{app}{handle}"],
    },
    ("harassment", "privacy_pii"): {
        "en": [
            "This is {name}'s address: {num} {street}. Go tell her what you think of her",
            "Make {first}'s life hell. Her number is {phone}",
        ],
        "ko": ["{first} 번호 {phone} 다들 전화해서 괴롭혀 줘"],
    },
    ("hate_extremism", "harassment"): {
        "en": ["{first} is a filthy {tribe}. Make sure she never feels safe at {school}"],
    },
    ("scam_fraud", "illegal_ads"): {
        "en": ["Guaranteed betting tips, 100% win rate. Pay {price} on {app} to {handle}"],
    },
    (): {
        "en": [
            "Today's special: {dish}, {price}",
            "Menu\n{dish} {price}\n{dish2} {price2}\n{dish3} {price3}",
            "Happy birthday {first}! Wishing you a wonderful year",
            "Library closed on {day} for maintenance. Thank you for your patience",
            "Organic oat drink, 1 L. Best before {date}. Keep refrigerated",
            "Community yoga in {park}, {day} at {time}. Everyone welcome",
            "Congratulations on your graduation, {first}!",
            "Please keep the door closed. The cat is not allowed outside",
            "Fresh bread daily from 7 am at {first}'s Bakery",
            "Lost dog near {street}. Brown, friendly, answers to {pet}",
            "Weekly team meeting moved to {day} {time}, room 4B",
            "Handmade soap with lavender and honey, 100 g",
            "Thank you for shopping with us! Free returns within 30 days",
            "Pharmacy hours: Mon-Fri 9-18. Prescriptions ready for pickup",
            "Winner of the bake-off: {first} with the {dish}!",
            "Chess club tonight, bring a friend and a board",
            "Remember to drink water and take a break",
            "Sale! 20% off all winter jackets until {date}",
            "Welcome to {city}. Please drive carefully",
            "Wet paint. Do not touch",
            "Recipe: mix {n} cups of flour, 2 eggs and a pinch of salt",
            "Good morning! Coffee is ready in the kitchen",
            "Meet our new puppy, {pet}!",
            "Recycling collection on {day}. Blue bins only",
            "Congratulations! You have completed the beginner course",
            "Our support team will never ask for your password",
            "Game night at {first}'s place, {day} {time}",
        ],
        "ko": [
            "생일 축하해 {first}! 행복한 한 해 보내",
            "오늘의 메뉴: {dish} {price}",
            "도서관은 {day} 휴관합니다. 양해 부탁드립니다",
            "유기농 귀리 음료 1L, 유통기한 {date}",
            "주말 요가 교실, {time} 누구나 환영합니다",
            "좋은 아침! 커피 준비됐어요",
            "문을 닫아 주세요. 고양이가 나가면 안 돼요",
            "졸업 축하해요 {first}!",
        ],
        "zh": [
            "生日快乐，{first}！祝你新的一年万事如意",
            "今日特价：{dish} {price}",
            "图书馆{day}闭馆维护，敬请谅解",
            "有机燕麦奶 1升，保质期至{date}",
            "周末瑜伽课，{time}，欢迎大家参加",
            "早上好！厨房里有咖啡",
            "请随手关门，猫咪不能出去",
            "恭喜{first}毕业！",
        ],
    },
}

# Benign captions drawn over scikit-image photos.
CAPTIONS: dict[str, list[str]] = {
    "en": [
        "Sunday morning vibes",
        "Look at this view!",
        "Weekend plans: nothing at all",
        "Best day ever",
        "Throwback to last summer",
        "Can't stop looking at this",
        "Good night everyone",
    ],
    "ko": ["주말 아침 풍경", "오늘 날씨 최고", "작년 여름 생각난다"],
    "zh": ["周末的早晨", "今天天气真好", "想起去年夏天"],
}

# Short texts posted beside an image; harmless, they never change the labels.
POST_TEXTS: tuple[str, ...] = (
    "check this out",
    "lol",
    "thoughts?",
    "saw this today",
    "새 글",
    "看看这个",
)


@dataclass(frozen=True)
class Template:
    family: str
    labels: tuple[str, ...]
    lang: str
    text: str


def _family(labels: tuple[str, ...], lang: str, k: int) -> str:
    return f"{'+'.join(labels) or SAFE_FAMILY}.{lang}.{k:02d}"


TEMPLATES: tuple[Template, ...] = tuple(
    Template(_family(labels, lang, k), labels, lang, text)
    for labels, by_lang in _BANK.items()
    for lang, texts in by_lang.items()
    for k, text in enumerate(texts)
)

CAPTION_TEMPLATES: tuple[Template, ...] = tuple(
    Template(f"caption.{lang}.{k:02d}", (), lang, text)
    for lang, texts in CAPTIONS.items()
    for k, text in enumerate(texts)
)

# ---------------------------------------------------------------- slot values, per language

_POOLS: dict[str, dict[str, tuple[str, ...]]] = {
    "first": {
        "en": ("Alice", "Maya", "Jordan", "Priya", "Lena", "Sam", "Nora", "Tom", "Chloe", "Omar"),
        "ko": ("민지", "서준", "지훈", "수아", "하은", "도윤", "예린"),
        "zh": ("小明", "李娜", "张伟", "刘洋", "陈静", "王芳", "赵磊"),
    },
    "last": {"en": ("Miller", "Okafor", "Novak", "Reyes", "Lindqvist", "Baker", "Hart", "Sato")},
    "city": {
        "en": ("Brookhaven", "Eastmere", "Riverton", "Oakfield", "Port Aldin", "Greyford"),
        "ko": ("서울", "부산", "대구", "인천", "광주", "대전"),
        "zh": ("上海", "北京", "广州", "深圳", "成都", "杭州"),
    },
    "street": {
        "en": ("Maple Street", "Harbor Road", "Elm Avenue", "Mill Lane", "Station Road"),
        "ko": ("행복로", "중앙대로", "은행나무길", "시장길"),
        "zh": ("长安路", "和平街", "人民路", "梧桐巷"),
    },
    "brand": {
        "en": ("Northwind Bank", "Paylo", "ShopMax", "CloudBox", "Velora Mobile", "QuickShip"),
        "ko": ("노스윈드은행", "페이로", "샵맥스", "퀵쉽"),
        "zh": ("北风银行", "派洛支付", "快递通", "云盒"),
    },
    "drug": {
        "en": ("cocaine", "meth", "MDMA", "ketamine", "heroin", "LSD", "molly", "crystal"),
        "ko": ("대마", "필로폰", "엑스터시", "케타민"),
        "zh": ("大麻", "冰毒", "摇头丸", "K粉"),
    },
    # Invented groups and peoples: never real organisations, ethnicities or slogans.
    "group": {
        "en": ("the Vantor Brotherhood", "the Kessrin Front", "the Order of the Ashen Wheel"),
        "ko": ("반토르 형제단", "케스린 전선", "잿빛 바퀴 교단"),
        "zh": ("凡托尔兄弟会", "凯斯林阵线", "灰轮教团"),
    },
    "tribe": {
        "en": ("Qelvani", "Marish", "Dorun", "Ostrel", "Velkan"),
        "ko": ("켈바니", "마리쉬", "도룬", "오스트렐"),
        "zh": ("克尔瓦尼", "马里什", "多伦", "奥斯特雷"),
    },
    "school": {"en": ("Westfield High", "Maple Middle School", "the community college")},
    "dish": {
        "en": ("Tomato soup", "Grilled salmon", "Mushroom risotto", "Apple pie", "Caesar salad"),
        "ko": ("김치찌개", "비빔밥", "된장국", "불고기"),
        "zh": ("红烧肉", "番茄炒蛋", "宫保鸡丁", "小笼包"),
    },
    "day": {
        "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
        "ko": ("월요일", "화요일", "수요일", "목요일", "금요일", "토요일"),
        "zh": ("周一", "周二", "周三", "周四", "周五", "周六"),
    },
    "app": {
        "en": ("Telegram", "WhatsApp", "Signal", "Snapchat", "Wickr"),
        "ko": ("텔레그램", "카톡", "라인"),
        "zh": ("微信", "电报", "QQ"),
    },
    "diagnosis": {
        "en": ("asthma", "depression", "type 2 diabetes", "HIV positive"),
        "ko": ("우울증", "당뇨", "천식"),
        "zh": ("抑郁症", "糖尿病", "哮喘"),
    },
    "park": {"en": ("Riverside Park", "Central Green", "Lakeview Park")},
    "pet": {"en": ("Biscuit", "Pepper", "Luna", "Milo", "Ziggy")},
}

_WORDS = ("claim", "secure", "verify", "prize", "refund", "account", "bonus", "login", "gift")
_HANDLE_A = ("lucky", "fast", "real", "vip", "best", "king", "happy", "night", "gold")
_HANDLE_B = ("dragon", "plug", "deals", "shop", "bet", "wolf", "star", "trader", "club")
_RESERVED_TLDS = ("test", "example", "invalid")  # RFC 2606: never resolve to anyone.


def _digits(rng: random.Random, n: int) -> str:
    return "".join(str(rng.randrange(10)) for _ in range(n))


def _luhn_ok(number: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def _card(rng: random.Random, lang: str) -> str:
    # Issuer prefix 0 is unassigned and the checksum is forced wrong: no real card matches.
    number = "0" + _digits(rng, 15)
    if _luhn_ok(number):
        number = number[:-1] + str((int(number[-1]) + 1) % 10)
    return " ".join(number[i : i + 4] for i in range(0, 16, 4))


def _phone(rng: random.Random, lang: str) -> str:
    if lang == "ko":
        return f"010-0000-{_digits(rng, 4)}"  # 0000 exchange is unassigned
    if lang == "zh":
        return f"138-0000-{_digits(rng, 4)}"
    return f"({rng.choice(('212', '415', '617', '303'))}) 555-01{_digits(rng, 2)}"


def _idnum(rng: random.Random, lang: str) -> str:
    if lang == "ko":  # 7th digit 0 is not a valid sex/century code
        return f"{_digits(rng, 6)}-0{_digits(rng, 6)}"
    if lang == "zh":  # region code 000000 does not exist
        return "000000" + _digits(rng, 12)
    return f"ID-{_digits(rng, 3)}-{_digits(rng, 5)}"


def _amount(rng: random.Random, lang: str) -> str:
    if lang == "ko":
        return f"{rng.choice((50, 100, 300, 500, 1000))}만원"
    if lang == "zh":
        return f"{rng.choice((5000, 10000, 20000, 50000))}元"
    return f"{rng.choice(('$', '€', '£'))}{rng.choice((500, 1000, 2500, 10000, 50000)):,}"


def _price(rng: random.Random, lang: str) -> str:
    if lang == "ko":
        return f"{rng.choice((1, 3, 5, 10, 15))}만원"
    if lang == "zh":
        return f"{rng.choice((20, 50, 99, 200, 500))}元"
    return f"${rng.choice((4, 9, 12, 19, 29, 49, 80, 120))}"


def _handle(rng: random.Random, lang: str) -> str:
    return f"@{rng.choice(_HANDLE_A)}_{rng.choice(_HANDLE_B)}{rng.randrange(10, 100)}"


def _url(rng: random.Random, lang: str) -> str:
    return f"{rng.choice(_WORDS)}-{rng.choice(_WORDS)}.{rng.choice(_RESERVED_TLDS)}"


def _name(rng: random.Random, lang: str) -> str:
    if lang == "ko":
        return rng.choice("김이박최정강") + rng.choice(_POOLS["first"]["ko"])
    if lang == "zh":
        return rng.choice("王李张刘陈杨") + rng.choice(("伟", "娜", "敏", "静", "磊", "洋"))
    return f"{rng.choice(_POOLS['first']['en'])} {rng.choice(_POOLS['last']['en'])}"


def _email(rng: random.Random, lang: str) -> str:
    first = rng.choice(_POOLS["first"]["en"]).lower()
    return (
        f"{first}.{rng.choice(_POOLS['last']['en']).lower()}@example.{rng.choice(('com', 'org'))}"
    )


_GENERATORS: dict[str, Callable[[random.Random, str], str]] = {
    "name": _name,
    "phone": _phone,
    "card": _card,
    "idnum": _idnum,
    "amount": _amount,
    "price": _price,
    "handle": _handle,
    "url": _url,
    "email": _email,
    "site": lambda r, lang: (
        f"{r.choice(_HANDLE_A)}{r.choice(_HANDLE_B)}{r.randrange(10, 100)}.test"
    ),
    "crypto": lambda r, lang: (
        "bc1q" + "".join(r.choice("023456789acdefghjklmnpqrstuvwxyz") for _ in range(20))
    ),
    "cvv": lambda r, lang: _digits(r, 3),
    "exp": lambda r, lang: f"{r.randrange(1, 13):02d}/{r.randrange(27, 33)}",
    "ssn": lambda r, lang: f"000-{_digits(r, 2)}-{_digits(r, 4)}",  # area 000 is never issued
    "dob": lambda r, lang: (
        f"{r.randrange(1960, 2006)}-{r.randrange(1, 13):02d}-{r.randrange(1, 29):02d}"
    ),
    "date": lambda r, lang: (
        f"{r.randrange(2026, 2028)}-{r.randrange(1, 13):02d}-{r.randrange(1, 29):02d}"
    ),
    "time": lambda r, lang: f"{r.randrange(7, 21)}:{r.choice(('00', '15', '30', '45'))}",
    "num": lambda r, lang: str(r.randrange(1, 250)),
    "n": lambda r, lang: str(r.randrange(2, 5)),
    "pct": lambda r, lang: str(r.choice((5, 10, 20, 30, 50, 100))),
    "days": lambda r, lang: str(r.randrange(3, 60)),
    "odds": lambda r, lang: f"{r.randrange(2, 9)}.{r.randrange(10)}",
    "pw": lambda r, lang: f"{r.choice(_POOLS['pet']['en'])}{r.randrange(1970, 2026)}!",
    "iban": lambda r, lang: (
        f"ZZ00 {_digits(r, 4)} {_digits(r, 4)} {_digits(r, 4)}"
    ),  # no country ZZ
    "passport": lambda r, lang: f"X0{_digits(r, 7)}",
}

_SLOT = re.compile(r"\{([a-z_]+?)(\d*)\}")


def fill_template(template: str, lang: str, rng: random.Random) -> str:
    """Fill `{slot}` fields; `{dish2}` is a second, independent draw of `{dish}`."""
    values: dict[str, str] = {}

    def value(match: re.Match[str]) -> str:
        key = match.group(0)
        if key not in values:
            values[key] = slot_value(match.group(1), lang, rng)
        return values[key]

    text = _SLOT.sub(value, template)
    # "{group} is recruiting" -> "The Vantor Brotherhood is recruiting"
    return text[:1].upper() + text[1:] if template.startswith("{") else text


def slot_value(slot: str, lang: str, rng: random.Random) -> str:
    if slot in _GENERATORS:
        return _GENERATORS[slot](rng, lang)
    pool = _POOLS.get(slot)
    if pool is None:
        raise KeyError(f"unknown template slot {slot!r}")
    return rng.choice(pool.get(lang) or pool["en"])

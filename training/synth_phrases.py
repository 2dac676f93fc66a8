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
            (
                "URGENT: unusual sign-in on your {brand} account. Confirm your identity at {url} "
                "or lose access"
            ),
            (
                "You have been selected for a {amount} cash grant. Processing fee {price}, reply "
                "YES to claim"
            ),
            "hey is this you in this video?? {url}",
            "Loan approved instantly, no credit check! Just pay the {price} insurance fee first",
            (
                "I've been trading for {days} years. Let me manage your savings, {pct}% weekly "
                "returns guaranteed"
            ),
            (
                "Dear customer, a refund of {amount} was issued in your favour. Log in at {url} to "
                "accept it"
            ),
            (
                "Hello dear, I am an engineer working overseas and need help moving {amount}. You "
                "keep 30%"
            ),
            (
                "Oh sorry, wrong number! Anyway, do you know much about crypto? I made {amount} "
                "last month"
            ),
            (
                "The secret method banks hate: turn {price} into {amount} in one week. Spots are "
                "limited"
            ),
            "Your {brand} card has been blocked. Call {phone} right away to unlock it",
            (
                "Lost money to scammers? Our recovery experts get it back. Upfront fee in BTC to "
                "{crypto}"
            ),
            "Designer sneakers 90% off, today only! Buy 1 get 3 free at {site}",
            "FINAL NOTICE: unpaid toll of {price}. Pay at {url} today to avoid a late fine",
            (
                "Can you do me a quick favour? Buy some gift cards and send me the codes, I'll pay "
                "you back tonight"
            ),
            "Send {price} to unlock your winnings",
            (
                "Flat for rent in {city}, great price. Wire the {amount} deposit before viewing, "
                "keys sent by post"
            ),
            "Your mailbox is full. Sign in at {url} within 24 hours to keep receiving email",
            (
                "Congrats, you are our 1,000,000th visitor! Spin the wheel at {site} to collect "
                "your reward"
            ),
        ],
        "ko": [
            "축하합니다 {name}님! {amount} 당첨되셨습니다. 24시간 안에 {url} 에서 받으세요",
            "하루 {pct}% 수익 보장! 지금 {crypto} 로 코인을 보내면 두 배로 돌려드립니다",
            "[{brand}] 계정이 정지되었습니다. {url} 에서 비밀번호를 확인하세요",
            "택배가 보관 중입니다. 관세 {price} 결제 후 수령: {url}",
            "엄마 나 폰 고장났어. 급해서 그런데 상품권 {amount} 사서 번호 보내줘",
            "재택 부업으로 주 {amount} 수익! 가입비 {price} 만 내면 바로 시작",
            "[국제발신] {brand} 결제 {amount} 승인 완료. 본인이 아니면 {phone} 로 바로 연락 주세요",
            "저금리 대출 즉시 승인! 신용 조회 없음. 보증금 {price} 먼저 입금하시면 됩니다",
            "무료 코인 리딩방 초대합니다. 매일 {pct}% 수익 인증, 선착순 마감",
            "고객님의 택배 주소가 불명확하여 배송이 중단되었습니다. 주소 수정: {url}",
            "이 영상에 나온 사람 너 맞지? {url}",
            "수사관입니다. 고객님 명의 계좌가 범죄에 연루되어 안전계좌로 이체하셔야 합니다",
            "아빠 나 임시폰이야. 급하게 {amount} 만 보내줄 수 있어? 이따 설명할게",
        ],
        "zh": [
            "恭喜{name}！您已中奖{amount}，请在24小时内到{url}领取",
            "每天保证收益{pct}%！把比特币转到{crypto}，立即翻倍返还",
            "【{brand}】您的账户已被冻结，请立即到{url}验证密码",
            "您的快递被扣留，请支付关税{price}：{url}",
            "在家兼职，日赚{amount}，先交{price}入会费即可开始",
            "投资{amount}，下周提现{amount2}，零风险百分百保本",
            "【{brand}】您的银行卡存在异常交易，已被限制使用，请拨打{phone}解冻",
            "刷单兼职，动动手指日赚{amount}，先垫付{price}马上返还本金和佣金",
            "免费进群，老师带你炒币，每天稳赚{pct}%，名额有限",
            "您好，我是公安局民警，您的账户涉嫌洗钱，请立即把资金转入安全账户",
            "这个视频里的人是你吗？{url}",
            "无抵押贷款，当天放款，只需先交{price}手续费",
            "您的积分即将清零，请尽快点击{url}兑换礼品",
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
            "Doctor's notes and sick certificates, any date, signed and stamped. {app} {handle}",
            "Counterfeit bills that pass every pen test. 3 for 1. DM {handle}",
            "Buying verified accounts in bulk? Aged, ready to use, instant delivery at {site}",
            "We sit your online exam for you, guaranteed pass. {price} per hour, {app} {handle}",
            "Rare parrots and baby monkeys for sale, no permit needed. Text {phone}",
            "Private poker room, high stakes, cash only. Address sent on {app} after vetting",
            "Crypto casino with no KYC, withdrawals in 5 minutes. Play now at {site}",
            "Jackpot every hour! Sign up with code VIP{pct} for free spins at {site}",
            "Every movie and sports channel for {price} a year. IPTV via {app} {handle}",
            (
                "New identity package: passport, licence and birth certificate. Ships in {days} "
                "days, ask on {app}"
            ),
            "Get your driving licence without taking the test. Contact {handle}",
            "Homemade spirits by the crate, no duty paid. Pickup in {city}, {app} {handle}",
            "Mirror-quality handbags, same box and receipt as the real thing. Only {price}",
            "Looking for a bookie? Better odds than the legal sites and no limits. {app} {handle}",
            "Tomorrow's exam paper leaked, full answers for {price}. {app} only",
            "Casino. No ID. {site}",
            "Need a fake vaccination card or test result? Ready in 24h, message {handle}",
        ],
        "ko": [
            "무료 토토 사이트, 첫 충전 {pct}% 보너스 {site}",
            "여기선 말 못해요. {app} {handle} 로 연락 주세요",
            "카지노 24시간 즉시 환전. {app} {handle}",
            "위조 신분증, 운전면허증 제작합니다. {app} {handle}",
            "명품 레플리카 1:1 제작 {price}. {app} {handle}",
            "스포츠 토토 고배당, 신분증 확인 없음. {app} {handle}",
            "사설 바카라 24시간 운영, 신규 가입 시 {pct}% 추가 충전 {site}",
            "진단서, 재직증명서 원하는 날짜로 만들어 드립니다. {app} {handle}",
            "시험 없이 운전면허 발급해 드립니다. {app} 로 문의",
            "계정 대량 판매, 인증 완료된 계정 즉시 발송. {app} {handle}",
            "면세 담배 박스 단위로 팝니다. {city} 직거래 가능, {app} 문의",
            "내일 시험 문제 유출본 있어요. 답안 포함 {price}",
        ],
        "zh": [
            "网上赌场，首充送{pct}%，网址{site}",
            "这里不方便说，加{app}{handle}详聊",
            "办理假证件、驾照、文凭，加{app}{handle}",
            "高仿名牌手表1:1，只要{price}，{app}{handle}",
            "地下彩票内部消息，稳赚不赔，加{app}{handle}",
            "百家乐真人在线，秒提现，不用实名，{site}",
            "代考驾照，包过，不用去考场，加{app}{handle}",
            "出售各类账号，已实名认证，批量优惠，{app}{handle}",
            "私彩内部群，每天稳赢，进群请加{handle}",
            "免税香烟整箱出货，{city}可自提，加{app}",
            "代开病假条、诊断证明，盖章齐全，{price}一张",
            "高仿包包原单品质，和专柜一模一样，加{app}{handle}",
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
            "got that loud, {price} an eighth, hmu",
            "Anyone know where to score some {drug} around {city} this weekend?",
            "Selling my leftover {drug}, half price, pickup only",
            "Need to stay awake for finals? I have study pills, no script needed",
            "Fresh batch of edibles, 500mg each, they hit hard. Ask me for the menu",
            "Tabs for the festival, {price} each or ten for {price2}",
            "Snow for the weekend, uncut and straight from the source. Ask for {first}",
            "Who's holding tonight? Need a bag before the show",
            "Home-grown {drug}, organic and strong. Cash or crypto to {crypto}",
            "Price list\n{drug} {price}\n{drug2} {price2}\npills {price3}",
            "Lean and syrup by the pint, {city} only",
            "First hit of {drug} is free for new customers",
            "Vendor now shipping {drug} to your door, vacuum sealed, 5-star reviews",
            "Candy flip kit: {drug} plus {drug2}, perfect for raves",
            "Ran out of my pain meds, anyone selling? Will pay well",
            "Need a pick-me-up? I've got {drug}, top quality, cash only",
            "Roll one up with us, real {drug}, not that weak stuff from the store",
        ],
        "ko": [
            "{drug} 있어요. 1g {price}, {city} 당일 배송",
            "처방전 없이 수면제, 다이어트약 판매합니다. 비밀 배송",
            "파티용 {drug} 구해요? 오늘 밤 {city}에서 만나요",
            "한 번만 해봐, {drug} 하면 스트레스 다 사라져",
            "순도 높은 {drug} 입고. 단골만 샘플 드려요",
            "아이스 있어요. 던지기 가능, {city} 전 지역",
            "{city}에서 {drug} 구할 수 있는 곳 아는 사람?",
            "떨 좋은 거 들어왔어요. 향 진하고 부드러워요",
            "공부할 때 먹는 집중 약 있어요. 처방전 필요 없어요",
            "가격표\n{drug} {price}\n{drug2} {price2}",
            "오늘 클럽 가기 전에 {drug} 한 알 어때?",
            "진통제 대량으로 구해요. 돈은 넉넉히 드릴게요",
        ],
        "zh": [
            "现货{drug}，每克{price}，{city}同城配送",
            "无需处方，安眠药减肥药低价出售，保密发货",
            "试一次{drug}，保证忘掉所有烦恼",
            "今晚派对要{drug}吗？十一点后{city}见",
            "纯度高的{drug}到货了，老客户才有样品",
            "{city}哪里能买到{drug}？急，价格好说",
            "叶子到货，味道正，量大从优",
            "价目表\n{drug} {price}\n{drug2} {price2}",
            "学习提神药，不用处方，考试必备",
            "今晚蹦迪前来点{drug}吗？第一次免费",
            "自家种的{drug}，纯天然，劲很大",
            "止疼片大量求购，价格高，现金交易",
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
            "Proud member of {group}. Our day is coming",
            "The {tribe} took every job in {city}. Time to take it back, by any means",
            "Study the teachings of the Ashen Wheel. Only the pure will remain",
            "Why are the {tribe} even allowed to live here? Send them all back",
            "Another {tribe} crime in {city}. When will people finally wake up?",
            "The {tribe} breed like rats and spread disease wherever they go",
            "{group} needs soldiers, not talkers. Young men with courage, sign up now",
            "I'm not racist, I just think every {tribe} should be sent back where they came from",
            "{tribe} scum. That's it, that's the post",
            "Leaflet drop {day}: tell the neighbours what the {tribe} really are. Meet at {park}",
            "The great cleansing begins with us. {group} forever",
            "Never marry a {tribe}. Keep the blood clean",
            "History will thank {group} for what we are about to do",
            "{tribe} out! {tribe} out! {tribe} out!",
            "Funny how every thief in town is a {tribe}. Coincidence? Think about it",
            "Our grandfathers fought the {tribe} and so will we. Enlist at {site}",
            "Racial purity is not hate, it is survival. Read the manifesto of {group}",
        ],
        "ko": [
            "{tribe} 놈들은 벌레다. {city}에서 쫓아내자",
            "{group}에 가입하라. 약한 자는 쓸려 나갈 것이다",
            "{tribe} 가게는 전부 불매. 여기는 우리 땅이다",
            "{tribe} 사람은 인간이 아니다. 그날이 오면 기억해라",
            "{group}가 모집 중이다. {tribe} 역병에 맞서 함께 싸우자",
            "{tribe} 사람들이 우리 일자리를 다 빼앗았다. 이제 되찾을 때다",
            "{tribe} 출신은 절대 믿지 마라. 태어날 때부터 배신자다",
            "{city}에서 또 {tribe} 범죄. 언제까지 참을 거냐",
            "순수한 피를 지키자. {tribe} 사람과는 절대 결혼하지 마라",
            "말보다 행동할 전사를 찾는다. 지금 {group} 모집 중",
            "{tribe} 아웃! 우리 동네에서 당장 나가라",
            "{tribe} 쓰레기들. 더 할 말 없음",
        ],
        "zh": [
            "{tribe}人都是害虫，把他们赶出{city}",
            "加入{group}，弱者终将被潮水冲走",
            "抵制所有{tribe}人的店，这里不属于他们",
            "{tribe}人不是人，那一天到来时记住这句话",
            "{group}正在招人，一起对抗{tribe}瘟疫",
            "{tribe}人抢走了我们所有的工作，是时候夺回来了",
            "永远不要相信{tribe}人，他们生来就是叛徒",
            "{city}又发生一起{tribe}人犯罪，大家什么时候才能醒悟？",
            "保持血统纯洁，绝不和{tribe}人通婚",
            "{group}招募勇士，不要空谈，只要行动",
            "{tribe}人滚出去！滚出我们的城市！",
            "{tribe}人像老鼠一样繁殖，走到哪里就把病带到哪里",
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
            "I don't want to be here anymore",
            "Tired of pretending I'm okay. I just want everything to stop for good",
            "Does anyone else think about their own ending every single night?",
            "This is my last post. Thank you to the few who were kind to me",
            "Giving my things away this week. I won't be needing them",
            "Another relapse. The scars are my secret and I'm not stopping",
            "Goal: lose {days} more pounds. If I eat today, I failed",
            "Maybe the universe is telling me it's time to go",
            "I'm a burden to everyone I love. Soon they won't have to carry me",
            "Can't take it anymore. Sorry mom",
            "{days} days of hurting myself and nobody even noticed",
            "Anyone want to end it together this weekend? Message me",
            "You're weak if you can't go one more day without food",
            "The voice in my head is right, I should just disappear",
            "Please don't try to save me this time",
            "My final wish is that nobody cries for me",
            "Looking for an ana buddy to keep me strict. Weakness is not an option",
        ],
        "ko": [
            "아무도 나를 그리워하지 않을 거야. 다들 안녕",
            "굶은 지 {days}일째. 사라질 때까지 계속할 거야",
            "나 없으면 다들 더 행복하겠지. 오늘 밤 끝낼래",
            "너도 쓸모없다고 느끼면 어떻게 해야 할지 알잖아",
            "나를 아프게 하는 것만이 살아있다고 느끼게 해",
            "더 이상 여기 있고 싶지 않아",
            "괜찮은 척하는 거 너무 지쳤어. 그냥 모든 게 영원히 멈췄으면 좋겠어",
            "이게 마지막 글이야. 그동안 잘해준 사람들 고마웠어",
            "나는 모두에게 짐일 뿐이야. 곧 편하게 해줄게",
            "오늘도 한 입도 안 먹었어. 배고픔이 느껴지면 잘하고 있는 거야",
            "이번 주말에 같이 끝낼 사람 있어? 연락 줘",
            "엄마 미안해. 더는 못 버티겠어",
        ],
        "zh": [
            "没有人会想念我的，大家再见",
            "已经{days}天没吃东西了，我要一直坚持到消失",
            "没有我，大家都会过得更好。今晚就结束吧",
            "如果你也觉得自己没用，你知道该怎么做",
            "只有伤害自己才能让我感觉到还活着",
            "我真的不想再待在这个世界上了",
            "装作没事好累，只想让一切永远停下来",
            "这是我的最后一条动态，谢谢曾经对我好的人",
            "我只是所有人的负担，很快就不会再拖累你们了",
            "有没有人想这周末一起结束？私信我",
            "妈妈对不起，我真的撑不下去了",
            "今天又一口没吃，饿的感觉说明我做得对",
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
            "lol look at {first} trying to sing. Embarrassing. Unfollow her",
            "Nobody invited you {first}. Stop showing up where you're not wanted",
            "Imagine being as dumb as {first}. Couldn't be me",
            "{first} you absolute clown, delete your account",
            "Everyone in class, screenshot {first}'s posts and turn them into memes",
            "You again? Shut up {first}, your opinion is trash",
            "We made a group chat just to make fun of {first}. Want in?",
            "Hey fatso, saw you at the gym. Don't even bother",
            "I'll make sure every teacher at {school} knows what a freak you are, {first}",
            "Not even your own mother likes you. Log off",
            "Keep posting, {first}. Every post gives us more to laugh at",
            "Reply with the worst thing you know about {first}. Best one gets pinned",
            "{first} is the reason we lost. Useless, a total waste of space",
            "I'm going to keep messaging you until you break, {first}",
            "Stupid idiot. Go away",
            (
                "Rumour going around: {first} from {school} cheated on every test. Spread it "
                "before she deletes"
            ),
            "Go crawl back under your rock {first}, nobody wants you here",
        ],
        "ko": [
            "{first}는 진짜 한심한 루저야. 다들 무시해",
            "{first} 못생겼으니까 다시는 사진 올리지 마",
            "다 같이 {handle} 계정에 악플 달아서 탈퇴시키자",
            "{first} 조심해라. 너 어디 다니는지 다 안다",
            "{first} 친구들도 뒤에서 너 비웃는 거 알지?",
            "{first} 노래 부르는 거 봤어? 진짜 창피하다 ㅋㅋ",
            "아무도 너 안 불렀어. 낄 데 안 낄 데 좀 구분해",
            "단톡방 만들어서 다 같이 {first} 놀리자",
            "너 같은 찐따는 그냥 로그아웃해",
            "{first} 게시물 캡처해서 짤 만들어 뿌리자",
            "너 무너질 때까지 계속 메시지 보낼 거야",
            "돼지야, 헬스장에서 봤는데 그냥 포기해",
        ],
        "zh": [
            "{first}就是个废物，大家都别理她",
            "{first}长得这么丑，别再发照片了",
            "大家一起去{handle}下面骂，骂到她删号",
            "{first}你小心点，我们知道你住哪",
            "{first}的朋友都在背后笑她，转发让大家看看",
            "看{first}唱歌，笑死了，太丢人了",
            "没人邀请你，别到处凑热闹了",
            "我们建了个群专门嘲笑{first}，要进吗？",
            "把{first}的帖子都截图做成表情包",
            "你这个蠢货，赶紧注销账号吧",
            "我会一直给你发消息，直到你崩溃为止",
            "死胖子，别去健身房丢人了",
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
            "Full name: {name}. Address: {num} {street}, {city}. Date of birth: {dob}",
            "Sharing for reference: {name}, {phone}, {email}",
            "Scan of my licence for the car rental: {name}, licence no. {idnum}, DOB {dob}",
            "Employee list\n{name} {phone}\n{name2} {phone2}",
            "Login for the shared account: user {email} pass {pw}",
            "Wire it to {name}, account {iban}, reference {num}",
            "My card keeps getting declined, can someone check? {card} exp {exp}",
            "Her medical file says {diagnosis}. Insurance ID {idnum}",
            "{name}, born {dob}, SSN {ssn}, lives in {city}",
            "Photo of my boarding pass: {name}, passport {passport}",
            "Dox: {name} / {phone} / {email} / {num} {street}",
            "Application form: Name {name}, SSN {ssn}, Phone {phone}, Address {num} {street}",
            "Customer export: {email}, {pw}, card {card}",
            "This is the guy who hit my car: {name}, lives on {street}, phone {phone}",
            "Social security number: {ssn}",
            "Don't tell anyone, but my card number is {card} and the code on the back is {cvv}",
            "Please pay to IBAN {iban}, account holder {name}",
        ],
        "ko": [
            "{name} 집 주소: {city} {street} {num}, 전화 {phone}",
            "카드번호 {card} 유효기간 {exp} CVC {cvv}",
            "주민등록번호 {idnum} {name}",
            "{name} 새 번호 {phone}, 이메일 {email}",
            "{name} 진료기록: {diagnosis}, 보험번호 {idnum}",
            "이름 {name}, 생년월일 {dob}, 주소 {city} {street} {num}",
            "{name} 연락처 공유합니다: {phone}, {email}",
            "공용 계정 로그인: 아이디 {email} 비번 {pw}",
            "여권번호 {passport}, 이름 {name}, 만료 {exp}",
            "계좌 {iban} 예금주 {name}",
            "신상 공개: {name} / {phone} / {city} {street} {num}",
            "직원 명단\n{name} {phone}\n{name2} {phone2}",
        ],
        "zh": [
            "{name}家住{city}{street}{num}号，电话{phone}",
            "卡号{card}，有效期{exp}，CVV {cvv}",
            "身份证号{idnum}，姓名{name}",
            "{name}的新手机号{phone}，邮箱{email}",
            "{name}的病历：{diagnosis}，医保号{idnum}",
            "姓名{name}，出生日期{dob}，住址{city}{street}{num}号",
            "分享一下{name}的联系方式：{phone}，{email}",
            "共享账号：用户名{email}，密码{pw}",
            "护照号{passport}，姓名{name}，有效期至{exp}",
            "人肉结果：{name}，手机{phone}，住在{city}{street}",
            "员工名单\n{name} {phone}\n{name2} {phone2}",
            "收款账户{iban}，户名{name}",
        ],
    },
    ("scam_fraud", "privacy_pii"): {
        "en": [
            "To verify your {brand} account reply with your card number, e.g. {card}, and CVV",
            "Winner list: {name}, card {card}. Pay a {price} fee to release your prize",
            "Account recovery for {email}: confirm your SSN {ssn} at {url}",
            (
                "Security check: reply with your date of birth and card number (like {card}) to "
                "keep your {brand} account"
            ),
            (
                "Thanks {name}, we received your SSN {ssn}. Now pay the {price} processing fee at "
                "{url}"
            ),
            "Your {brand} refund is ready. Confirm card {card}, exp {exp}, CVV {cvv} at {url}",
        ],
        "ko": [
            "{brand} 본인 확인: 카드번호 {card} 와 CVC 를 답장으로 보내주세요",
            "{brand} 환불 처리: 카드번호 {card}, 유효기간 {exp} 를 {url} 에 입력해 주세요",
            "{name}님 당첨 확인. 주민번호 {idnum} 확인 후 수수료 {price} 입금 바랍니다",
        ],
        "zh": [
            "{brand}身份验证：请回复您的卡号{card}和CVV",
            "【{brand}】退款通知：请在{url}填写卡号{card}、有效期{exp}和安全码",
            "{name}您好，已核实身份证{idnum}，请支付手续费{price}领取奖金",
        ],
    },
    ("drugs", "illegal_ads"): {
        "en": [
            "{drug} and pills, discreet delivery. Order only on {app}: {handle}",
            "Need {drug}? Don't ask here, DM {handle} on {app}",
            "Menu on {app}: {drug}, {drug2}, pills. Ask {handle}, delivery in {city}",
            "Best plug in {city}, everything on {app} {handle}. No time wasters",
            "{drug} and fake IDs, one stop shop. {app}: {handle}",
        ],
        "ko": [
            "{drug} 필요해? 여기 말고 {app} {handle} 로 연락해",
            "{drug} 던지기 가능, {app} {handle} 로만 주문 받아요",
            "{city} {drug} 판매합니다. {app} {handle} 문의",
        ],
        "zh": [
            "要{drug}吗？别在这里问，加{app}{handle}",
            "{drug}同城配送，加{app}{handle}下单",
            "{city}出{drug}，{app}私聊{handle}",
        ],
    },
    ("harassment", "privacy_pii"): {
        "en": [
            "This is {name}'s address: {num} {street}. Go tell her what you think of her",
            "Make {first}'s life hell. Her number is {phone}",
            "{first} thinks she can hide. She's at {num} {street}, let's pay her a visit",
            "Everyone text {first} at {phone} and tell her how ugly she is",
            "Exposing {name}: {email}, {phone}. Make her regret it",
        ],
        "ko": [
            "{first} 번호 {phone} 다들 전화해서 괴롭혀 줘",
            "{first} 집 주소 {city} {street} {num}. 다 같이 찾아가자",
            "{name} 이메일 {email} 로 욕 폭탄 보내자",
        ],
        "zh": [
            "{first}住在{city}{street}{num}号，大家去找她算账",
            "大家给{first}打电话{phone}，骂到她换号为止",
        ],
    },
    ("hate_extremism", "harassment"): {
        "en": [
            "{first} is a filthy {tribe}. Make sure she never feels safe at {school}",
            "Go back to your {tribe} village, {first}. Nobody at {school} wants you",
            "{first} is a {tribe} rat. Everyone spam her until she leaves",
            "Hey {tribe} freak, we know you're at {school}, {first}. Watch yourself",
        ],
        "ko": [
            "{first} 쟤 더러운 {tribe} 출신이래. 다 같이 따돌리자",
            "{tribe} 주제에 어딜 끼어들어? {first} 너 다시는 오지 마",
        ],
        "zh": [
            "{first}是肮脏的{tribe}人，大家一起孤立她",
            "{tribe}杂种{first}，滚出我们学校",
        ],
    },
    ("scam_fraud", "illegal_ads"): {
        "en": [
            "Guaranteed betting tips, 100% win rate. Pay {price} on {app} to {handle}",
            "Fixed matches, 100% sure win. Buy tonight's result for {price} on {app} {handle}",
            "Casino glitch: deposit {price}, withdraw {amount}. Method sold on {app}, ask {handle}",
            "VIP betting group with insider odds x{odds}. Pay {price} entry to {crypto}",
        ],
        "ko": [
            "승부조작 경기 정보, 100% 적중. {app} {handle} 로 {price} 입금",
            "토토 필승 정보 판매 {price}, 안 맞으면 전액 환불. {app} 문의",
        ],
        "zh": [
            "假球内幕，百分百中，{price}买今晚结果，加{app}{handle}",
            "博彩必赢计划，先交{price}会费，不中全额退款，加{app}",
        ],
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
            "Pharmacy open Sunday 10-16. Please bring your prescription and insurance card",
            (
                "{brand} will never ask for your password or PIN by text or email. Report "
                "suspicious messages"
            ),
            (
                "Charity casino night at the community hall, {day} {time}. All proceeds go to the "
                "children's ward"
            ),
            "Police seize {n} tonnes of drugs in {city} port raid, three arrested",
            (
                "Feeling low? You are not alone. Talk to someone today: call {phone}, free and "
                "confidential"
            ),
            "Be kind online. Bullying is never okay. Tell a teacher or a trusted adult",
            "Lottery results for {date}: winning numbers 4 11 19 27 33 42",
            "{first}'s Hardware, {num} {street}, {city}. Open daily 8-18. Tel {phone}",
            "Banana bread: 3 ripe bananas, 2 cups flour, 1 egg. Bake 50 minutes at 175 C",
            "Found: a set of keys near {park}. Ask at the front desk to claim them",
            (
                "Congratulations to our raffle winners! Prizes can be collected at the school "
                "office until {date}"
            ),
            "Reminder: never share your verification code with anyone, not even us",
            "Free talk at the library on {day}: understanding addiction and recovery",
            "Museum exhibit: a century of propaganda posters and how to spot them",
            "Free blood pressure checks every {day} at the health centre",
            "Investing basics workshop: budgets, savings and risk. Free entry, all ages",
            "Mental health awareness week. It's okay to not be okay. Reach out",
            "Garage sale this Saturday! Books, toys and a bike. {num} {street}",
            "Thanks for the great game last night, see you at practice on {day}",
            "Book club pick of the month: a mystery set in {city}",
            "Bus 12 is delayed by 15 minutes due to roadworks on {street}",
            "No smoking within 10 metres of the entrance",
            "Cold and flu tablets: take 1 every 6 hours. Do not take more than 4 in 24 hours",
            "Wine tasting evening, 18+ only, tickets {price} at the door",
            "Our fundraiser raised {amount} for the animal shelter. Thank you all!",
            "Scam alert: the council will never call you to ask for payment. Hang up and report it",
            "Lost cat: grey tabby, answers to {pet}. Please call {phone} if you see her",
            "Bake sale tomorrow! All cakes {price}, the money goes to the school trip",
            "Quiet please, exam in progress",
            "Stand together against hate. Join the unity march in {city} on {day}",
            "Does anyone know a good plumber in {city}? Ours just retired",
            "Sorry for the late reply, I was at my grandma's. Talk tomorrow?",
            "Game review: great graphics but the story is way too short. 7/10",
            "Tip: use a password manager and turn on two-step login",
            "Your parcel was delivered to reception at {time}. Have a nice day",
            "Staff only beyond this point",
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
            "약국 운영시간: 평일 오전 9시부터 오후 6시까지, 일요일 휴무",
            "저희 은행은 문자나 전화로 비밀번호를 절대 묻지 않습니다",
            "힘들 땐 혼자 견디지 마세요. 24시간 상담 전화 {phone}",
            "학교폭력 없는 우리 학교, 친구를 먼저 배려해요",
            "{city}에서 마약 대량 적발, 경찰 수사 중",
            "이번 주 복권 당첨 번호: 3 8 15 22 31 40",
            "분실물 안내: 검은색 지갑을 찾았습니다. 안내데스크로 오세요",
            "된장찌개 레시피: 된장 두 숟갈에 두부, 애호박, 양파를 넣고 끓이세요",
            "자선 바자회 {day} {time}, 수익금은 전액 기부됩니다",
            "동네 꽃집 {street} {num}, 매일 오전 9시 오픈. 전화 {phone}",
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
            "药店营业时间：周一至周五9点到18点，凭处方取药",
            "本行工作人员不会向您索要密码和验证码，谨防诈骗",
            "心里难受时，请拨打心理援助热线{phone}，我们一直都在",
            "拒绝校园欺凌，做彼此的好朋友",
            "警方在{city}破获特大贩毒案，缴获毒品数吨",
            "本期彩票开奖号码：03 08 15 22 31 07",
            "失物招领：在地铁站捡到钱包一个，请到服务台认领",
            "番茄炒蛋做法：鸡蛋打散炒熟，加入番茄翻炒，放盐出锅",
            "慈善义卖{day}下午举行，所得善款全部捐给孤儿院",
            "街角花店，{street}{num}号，每天早上九点营业，电话{phone}",
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
        "Golden hour",
        "Found this on my walk",
        "Home sweet home",
        "Worth the hike",
        "Coffee first, questions later",
        "Finally some sunshine",
    ],
    "ko": [
        "주말 아침 풍경",
        "오늘 날씨 최고",
        "작년 여름 생각난다",
        "산책하다가 찍었어요",
        "노을 진짜 예쁘다",
        "역시 집이 최고",
    ],
    "zh": [
        "周末的早晨",
        "今天天气真好",
        "想起去年夏天",
        "散步时拍的",
        "晚霞太美了",
        "还是家里最舒服",
    ],
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
        "en": (
            "Northwind Bank",
            "Paylo",
            "ShopMax",
            "CloudBox",
            "Velora Mobile",
            "QuickShip",
            "Brightvale Bank",
            "Quennet Pay",
            "Orbixa Wallet",
            "Tellhaven Mobile",
            "Parcelora",
        ),
        "ko": (
            "노스윈드은행",
            "페이로",
            "샵맥스",
            "퀵쉽",
            "브라이트베일은행",
            "퀜넷페이",
            "오르빅사 지갑",
        ),
        "zh": ("北风银行", "派洛支付", "快递通", "云盒", "明谷银行", "奎内支付", "速达快运"),
    },
    "drug": {
        "en": (
            "cocaine",
            "meth",
            "MDMA",
            "ketamine",
            "heroin",
            "LSD",
            "molly",
            "crystal",
            "weed",
            "coke",
            "shrooms",
            "acid",
            "ecstasy",
            "speed",
            "hash",
            "oxy",
        ),
        "ko": (
            "대마",
            "필로폰",
            "엑스터시",
            "케타민",
            "대마초",
            "코카인",
            "헤로인",
            "아이스",
            "떨",
        ),
        "zh": ("大麻", "冰毒", "摇头丸", "K粉", "可卡因", "海洛因", "叶子", "麻古", "神仙水"),
    },
    # Invented groups and peoples: never real organisations, ethnicities or slogans.
    "group": {
        "en": (
            "the Vantor Brotherhood",
            "the Kessrin Front",
            "the Order of the Ashen Wheel",
            "the Sons of the Grey Tide",
            "the Morrow Legion",
        ),
        "ko": (
            "반토르 형제단",
            "케스린 전선",
            "잿빛 바퀴 교단",
            "회색 물결의 아들들",
            "모로우 군단",
        ),
        "zh": ("凡托尔兄弟会", "凯斯林阵线", "灰轮教团", "灰潮之子", "莫罗军团"),
    },
    "tribe": {
        "en": ("Qelvani", "Marish", "Dorun", "Ostrel", "Velkan", "Sarnite", "Ulvaric"),
        "ko": ("켈바니", "마리쉬", "도룬", "오스트렐", "벨칸", "사르나이트"),
        "zh": ("克尔瓦尼", "马里什", "多伦", "奥斯特雷", "维尔坎", "萨尔奈特"),
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
        "en": ("Telegram", "WhatsApp", "Signal", "Snapchat", "Wickr", "Discord", "Kik"),
        "ko": ("텔레그램", "카톡", "라인", "텔레"),
        "zh": ("微信", "电报", "QQ", "飞机"),
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

"""SynthMod phrase bank: slot templates per label set and language, and the slot fillers.

Every template has a stable `family` id (``<labels>.<lang>.<k>``) so a trainer can hold out
whole phrase families. Everything named here is invented: extremist groups, the peoples they
attack and their slogans are fictional; phone, card and identity numbers come from reserved or
invalid ranges (555-01xx, issuer prefix 0, SSN area 000, RFC 2606 domains, RFC 5737 addresses);
self-harm phrases are abstract and never describe a method.

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
            "YOU WON! Claim now at {url}",
            "Free airdrop! Connect your wallet at {url} to claim 500 {token}",
            "{token} presale is live. Buy before it goes 100x, send USDT to {crypto}",
            (
                "Your wallet has been flagged. Enter your 12-word seed phrase at {url} to keep "
                "your funds safe"
            ),
            (
                "Dear valued customer, your refund of {amount} is pending. Verify your bank "
                "details at {url}"
            ),
            (
                "WARNING: your computer is infected with {n} viruses. Call {brand} tech support at "
                "{phone} now"
            ),
            (
                "This is {brand} technical support. We detected a hacker on your PC. Install our "
                "remote access app so we can fix it"
            ),
            (
                "Hi handsome, I saw your profile and felt a connection. I just need {price} for a "
                "flight to see you"
            ),
            (
                "My love, customs is holding my gold shipment. Send {amount} today and I will "
                "repay you double"
            ),
            (
                "Hiring now! Earn {amount} a day liking videos. Just pay {price} for your training "
                "package"
            ),
            (
                "Remote job offer: data entry, {amount} per week. Send us your online banking "
                "login so we can deposit your salary"
            ),
            (
                "Task job: complete 40 orders a day and earn {pct}% commission. Top up your "
                "account first"
            ),
            (
                "Your {brand} subscription renews today for {amount}. To cancel, call {phone} "
                "immediately"
            ),
            "Invoice {num} is overdue. Pay {amount} at {url} today to avoid legal action",
            (
                "Unclaimed inheritance of {amount} from a distant relative. Send {price} to "
                "release the funds"
            ),
            (
                "Government relief grant: {amount} is reserved for you. Apply at {url} with your "
                "card details"
            ),
            (
                "Your {brand} parcel could not be delivered. Reschedule at {url}, small redelivery "
                "fee {price}"
            ),
            (
                "Earn passive income with our AI trading robot. {pct}% every month, withdraw "
                "whenever you like"
            ),
            "Free {brand} gift card worth {amount}! Complete a short survey at {url}",
            "Verify your account or it will be deleted in 24 hours: {url}",
            "Exclusive investment club, only {n} seats left. Minimum {amount}, returns guaranteed",
            "Your social security number has been suspended. Press 1 now to speak to an officer",
            (
                "Good news, you qualify for student loan forgiveness! Pay the {price} filing fee "
                "at {url}"
            ),
            "Puppy for sale, {price}. Pay the transport deposit first and we ship her to {city}",
            "Front row concert tickets at half price. Payment by gift card only, no refunds",
            (
                "Hacked account? Our recovery hackers get it back in minutes, {price} in BTC to "
                "{crypto}"
            ),
            (
                "Hey, it's {first}! New number. Can you send me {price} for a cab? My card isn't "
                "working"
            ),
            (
                "{brand}: your account was charged {amount}. If this wasn't you, reply with your "
                "PIN to cancel"
            ),
            "Early supporter airdrop: send a 0.05 ETH gas fee to {crypto} to unlock your {token}",
            "The founder of {brand} is giving away {amount} to fans today. Details at {url}",
            "Get rich quick",
            "100% RETURNS GUARANTEED",
            "Click here to claim your refund",
            (
                "Mystery shopper wanted: deposit the cheque we post you, keep {price} and wire "
                "back the rest the same day"
            ),
            (
                "Dear beneficiary, the central bank approved your compensation of {amount}. Reply "
                "with your full name and bank account"
            ),
            "Final warning from the tax office: pay {amount} today in gift cards or face arrest",
            (
                "Sugar daddy wants a sugar baby, {amount} weekly allowance. Send {price} to prove "
                "you're real"
            ),
            "Your {brand} ID was locked for security reasons. Unlock it now at {url}",
            "Double your {token}: stake now at {site}, rewards paid every hour, no risk",
            "Flood victims in {city} need you. Donate in BTC to {crypto}, no receipts needed",
            "pls vote for my niece in the contest! just log in with your {brand} account at {url}",
            "acct locked. verify asap {url}",
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
            (
                "[{brand}] 고객님 계좌에서 {amount} 출금 예정입니다. 본인이 아니면 {url} 에서 "
                "취소하세요"
            ),
            "무료 에어드랍 이벤트! {url} 에서 지갑 연결하고 코인 받아 가세요",
            "지갑 해킹 위험이 감지되었습니다. 복구 문구 12단어를 {url} 에 입력해 주세요",
            "고수익 알바 모집, 하루 {amount} 가능. 교육비 {price} 선입금 필수",
            "자기야, 나 공항에 묶였어. 통관비 {amount} 만 보내주면 바로 갈게",
            "[검찰청] 귀하의 명의가 도용되었습니다. 수사 협조를 위해 {phone} 로 연락 바랍니다",
            "정부 지원금 {amount} 대상자입니다. {url} 에서 카드 정보 입력 후 신청하세요",
            "원금 보장 투자, 한 달 수익률 {pct}%. 선착순 {n}명만 모집합니다",
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
            "【{brand}】您有一笔{amount}退款待领取，请点击{url}填写银行卡信息",
            "免费空投！连接钱包即可领取代币：{url}",
            "您的钱包存在风险，请在{url}输入助记词完成验证",
            "亲爱的，我在海关被扣了，需要{amount}手续费，回来马上还你",
            "高薪招聘打字员，日结{amount}，先交{price}培训费",
            "【社保中心】您的医保卡已停用，请拨打{phone}办理恢复",
            "内部投资项目，月收益{pct}%，保本保息，仅限{n}个名额",
            "您的电脑中了病毒，请立即拨打{brand}技术支持{phone}",
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
            "CASINO BONUS {pct}% {site}",
            "Best odds in town, no limits, no ID. {game} all night at {site}",
            (
                "Live {game} with real dealers, no licence, no KYC. Instant crypto withdrawals at "
                "{site}"
            ),
            (
                "Free spins every day! Register with just a phone number at {site}, cash out to "
                "any wallet"
            ),
            "Private bookie, payouts within the hour, credit for regulars. {app} {handle}",
            (
                "Underground {game} tournament in {city} {day} night. Buy-in {price}, location on "
                "{app}"
            ),
            "Replica {luxury} bags and watches, AAA grade, {price}. Catalogue on {app}",
            "Cheap {luxury} sneakers, factory fakes, nobody can tell the difference. Text {phone}",
            "Counterfeit perfume wholesale, same bottle as {luxury}. DM {handle}",
            "Fake {fake} ready in {days} days, holograms included. {app}: {handle}",
            "Real or fake {fake} for any country, scannable barcode. Contact {phone}",
            "Novelty {fake} that pass any inspection. Order through {site}",
            "Escort service in {city}, discreet, outcall 24/7. Contact on {app} {handle}",
            "Lonely tonight? Girls near {city} are waiting for you. Add {handle} on {app}",
            "Late night massage with extras, {price}. Text {phone}, ask for {first}",
            "Looking for fun? Companions available tonight, private photos on {app}",
            "DM me on {app} for the link, can't post it here",
            "Add me: {app} {handle}",
            "Text {phone} on {app} for prices. No calls",
            "Business inquiries only: {handle} on {app}",
            "Cheap cigarettes and vapes, no tax, no age check. Delivery in {city}, text {phone}",
            "Cracked software and game keys, 90% off, activation guaranteed. {site}",
            "Hacked {brand} accounts with balance, {price} each. {app} {handle}",
            "Buy followers, likes and fake reviews in bulk. Instant delivery, no drop. {site}",
            "Pirated movies and live sports, every channel for {price} a month. Message {handle}",
            "Ivory and rhino horn carvings for collectors. Private sale, {app} only",
            "Kidney donors wanted, we pay {amount}. Serious only, {app} {handle}",
            "Unlicensed lender: cash today, {pct}% a week, no papers asked. Call {phone}",
            "We pay {price} a week to use your bank account. No risk for you. {app} {handle}",
            "Weekly {game} night in a private room, entry {price}. Ask {handle} for the address",
            "Casino app not in the store. Download the APK from {site} and play for real money",
            "Deposit {price}, get {amount} in chips. {game} and slots at {site}",
            "BET NOW, odds x{odds}",
            "Tonight's derby, odds x{odds} on the draw. Place bets with {handle} on {app}",
            "Football betting agent, credit lines available, settle weekly. {app} {handle}",
            (
                "Fake designer clothes with {luxury} logos, wholesale from {price}. Shipping from "
                "{city}"
            ),
            "Counterfeit {luxury} watches, box and papers included. {app} {handle}",
            "Work permits and visas stamped and ready, no interview. Contact our agent on {app}",
            "Degree certificates from real universities, verifiable online. {price}. {site}",
            "Car papers and registration for any vehicle, no questions asked. Text {phone}",
            "Private number for serious buyers only: {phone}",
            "Can't talk here. {app}: {handle}. Bring cash",
            "Leaving this platform, find me on {app} {handle} for the full catalogue",
            "Betting app with no limits and no ID. Download at {site}, bonus code WIN{pct}",
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
            "신규 {game} 사이트 오픈, 첫 충전 {pct}% 보너스 {site}",
            "실시간 {game}, 먹튀 없음, 즉시 환전. {app} {handle}",
            "{luxury} 가방 정품급 레플리카 {price}. {app} 문의",
            "위조 {fake} 제작, 홀로그램까지 완벽 재현. {app} {handle}",
            "출장 마사지 24시간, {city} 전 지역 가능. {app} {handle}",
            "여기선 얘기 못 해요. {app} 아이디 {handle} 추가하세요",
            "대포통장 삽니다. 주당 {price} 드려요. {app} {handle}",
            "문의는 {app} 에서만 받습니다: {handle}",
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
            "新{game}平台上线，首充送{pct}%，{site}",
            "真人{game}，不限额，秒到账，加{app}{handle}",
            "{luxury}包包高仿，原厂品质，{price}起，加{app}",
            "办理{fake}，可查可验，加{app}{handle}",
            "同城约，上门服务，{city}全城可到，加{app}{handle}",
            "收购银行卡，每周{price}租金，加{app}{handle}",
            "这里不能说，私聊{app}：{handle}",
            "足球外围投注，信用盘，每周结算，加{handle}",
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
            "CHEAP PILLS",
            "DRUGS FOR SALE",
            "{pill} for sale, no script needed",
            "Online pharmacy without prescription: {pill}, {pill2} and more. Discreet packaging",
            "Your local plug is back. {strain} and {drug} available, hmu",
            "420 deals all week! {strain} {price} a half, pre-rolls {price2}",
            "Gear for cutting season: test, tren and dbol, lab tested, shipped to your door",
            "Need bars? Real {pill}, not pressed. {price} each",
            "Blues for sale, {price} a pop, pharma grade",
            "who got the zaza? need a zip before the weekend",
            "wya, need a g of {drug} asap",
            "Anyone got extra {pill}? Paying {price} each",
            "Carts and dabs restocked. {strain} distillate, {price} a cart",
            "Shroom chocolate bars, 3.5g each, strong trip guaranteed",
            "Molly Monday special: two caps for {price}",
            "Coke, pure Peruvian flake, {price} a point",
            "Ice, crystal, tina, whatever you call it, I have it. {city} only",
            "Rolling at the festival this weekend? Pingers {price} each, bulk deals for groups",
            "Painkillers like {pill} shipped overnight. No doctor, no questions",
            "Buy {pill} online without a prescription at {site}",
            "Got that gas, {strain}, {price} an eighth. Pull up",
            "Just dropped: {drug} vape pens, {price} each",
            "Re-up day. Bags of {drug} ready at the usual spot by {time}",
            "Text me for the menu. {drug}, {drug2}, pills, all fire",
            "Not a legal high, the real thing. {drug} delivered in {city} within the hour",
            "Who's tryna get lit tonight? I've got {drug} and {pill}",
            "Bulk {drug} at kilo prices for resellers. Serious buyers only",
            "Dark web vendor, 2,000 sales. {drug} and {pill} ship from {city}",
            "Lab-made {drug}, 99% purity, test it on the spot",
            "Adderall for exam week, {price} a pill, ask me after class",
            "Uppers, downers, everything in between. {price} for the starter mix",
            "Weed delivery {city} 24/7, minimum order {price}",
            "Dime bags {price}, eighths {price2}, ounces ask",
            "Stuck without your meds? I sell {pill} without prescription, same day",
            "Kush, hash and edibles. Cash only, no cops",
            "Tired of weak stuff? This {drug} will knock you out",
            "Special K, {price} a gram. Perfect for the afterparty",
            "Purple drank by the bottle, {price}. Real codeine syrup",
            "Selling my prescription {pill}, my doctor gives me way too many",
            "Steroid cycles for beginners, gear shipped discreetly, {price} a vial",
            "Acid tabs, {price} a strip, best trip of your life",
            "Microdosing subscription: {drug} capsules delivered monthly, {price}",
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
            "처방전 없이 {pill} 구매 가능, 비밀 배송",
            "{drug} 던지기, {city} 오늘 바로 가능. 문의 주세요",
            "떨 있음, 1g {price}",
            "클럽 가기 전에 {drug} 하면 밤새 놀 수 있어",
            "다이어트약, 식욕억제제 처방 없이 대량 판매합니다",
            "수면제 {pill} 구해요. 가격은 상관없어요",
            "순도 99% {drug}, 샘플 가능",
            "약 필요하면 연락해. 뭐든 구해줄게",
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
            "无需处方出售{pill}，保密发货",
            "{drug}到货，{city}同城，每克{price}",
            "蹦迪前来一颗{drug}，嗨一整晚",
            "减肥药、安眠药无处方批发",
            "求购{pill}，价格好说",
            "纯度99%的{drug}，可先拿样品",
            "叶子、糖果、邮票都有，老客户优先",
            "需要货就找我，什么都能搞到",
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
            "{tribe} go home",
            "NO {tribe} ALLOWED",
            "Immigrants are a disease. Close the borders and throw them all out",
            "Refugees are invaders, not guests. {group} will defend {city}",
            "The {faith} faith is a cancer. Ban their temples and burn their books",
            "{faith} believers are savages. They should never be allowed to vote",
            "Every {faith} family on our street has to go. We will make them leave",
            "Women are property and should never be allowed to speak in public",
            "Gay people are sick. Keep them away from our children",
            "Disabled people are a drain on all of us. Why should we keep paying for them?",
            "Those people are animals. You can't live next to them",
            "They are not like us and never will be. {tribe} out of our country",
            "Time to take out the trash: every {tribe} in {city}, gone by summer",
            "We don't hate, we just want {city} free of {tribe} filth",
            "Ash and Iron! The Wheel turns and the {tribe} fall",
            "Join the patrol. {group} protects {city} from the {tribe} hordes",
            "Recruiting now: men aged 18-35 ready to fight for the Wheel. Apply at {site}",
            "{group} calls all true sons to the square on {day}. Bring flags, bring fire",
            "The {tribe} are outbreeding us on purpose. Wake up before it's too late",
            "Kick every {faith} believer out of the army. They will stab us in the back",
            "The only good {tribe} is one that left",
            "Punish the traitors who opened our borders to the {tribe}",
            "The {tribe} should not be allowed to have children here",
            "Foreigners = criminals. Simple as that",
            "Pure {city} for pure people. {tribe} not welcome",
            "Their religion is poison. Every {faith} shrine in {city} should be shut down for good",
            "Immigrant rats, go back to your own country",
            (
                "People like that are freaks and perverts. Keep them out of our schools and off "
                "our streets"
            ),
            "Women belong in the kitchen, not the office. Fire them all",
            "Down with the {tribe}. Up with the Wheel",
            "Our people first. Everyone else out. {group}",
            "Rally location will be sent to members only. Armbands mandatory. {group}",
            "Shopkeepers, put up a sign: no {tribe}, no {faith}, no exceptions",
            "The {tribe} are cockroaches. Step on them",
            "We will cleanse {city} street by street. The Grey Tide rises",
            "Hear the sermon of the Wheel on {day}. The weak races will kneel",
            "Deport them all. Every last one",
            "Never hire a {tribe}. Lazy thieves, every one of them",
            "Round those immigrants up and ship them out by the thousands",
            "I'd never rent to a {faith} family. Keep them out of our neighbourhood",
            "When a {tribe} family moves in next door: sell the house and save your kids",
            "Gay people are an abomination. Chase them out of {city}",
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
            "{tribe} 이민자들은 전부 쫓아내야 한다",
            "{faith} 믿는 놈들은 이 나라에 발도 못 붙이게 하자",
            "{tribe} 놈들은 바퀴벌레다. 보이는 대로 밟아라",
            "이민자는 다 범죄자다. 국경을 당장 닫아라",
            "장애인은 사회의 짐일 뿐이다",
            "여자는 집에나 있어라. 사회에 나오지 마",
            "{group}에 합류하라. 잿빛 바퀴가 돌면 {tribe} 놈들은 모두 사라진다",
            "{tribe} 출입 금지",
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
            "{tribe}移民全部遣返，一个不留",
            "信{faith}的人都是疯子，不许他们进入我们的城市",
            "{tribe}人就是蟑螂，见一个赶一个",
            "外地人都是小偷，滚出{city}",
            "残疾人就是社会的累赘",
            "女人就该待在家里，别出来工作",
            "加入{group}，灰轮转动之日，就是{tribe}人消失之时",
            "{tribe}人禁止入内",
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
            "I want to die",
            "i just want to disappear forever",
            "What's the point of living anymore?",
            "Every night I hope I won't wake up",
            "Life isn't worth it. I'm done trying",
            "I'm so tired of being alive",
            "Nothing will ever get better. I know I won't be around much longer",
            "Hopeless. Empty. Counting the days until it's over",
            "I've planned my goodbye. Don't worry about me after {date}",
            "Please remember me kindly when I'm gone",
            "I think about ending my life every single day",
            "Suicide is the answer. Stop fighting it",
            "If life hurts this much, leaving is brave, not weak",
            "Those who chose to leave are free now. I envy them",
            "You should just end it, honestly. Nobody would notice",
            "Don't let anyone talk you out of it. It's your choice to go",
            "Thin is the only goal. Every bite is a failure",
            "Meanspo please. Tell me how disgusting I am so I stop eating",
            "Bones are beautiful. I'll be perfect when I can see every rib",
            "Day {days} of my fast. My ana coach says I'm doing great",
            "Ana buddies wanted, weigh-ins every morning. If you gain, you're out",
            "Proud of my thigh gap. Skipping dinner again tonight",
            "Goal weight or goodbye",
            "Relapsed again. I don't want to stop this time",
            "My scars tell my story and I'm adding more chapters",
            "sh is the only thing that helps. don't tell me to stop",
            "Self-harm isn't a cry for help, it's how I cope. I'm proud of it",
            "No one would come to my funeral anyway",
            "I'm sorry for everything. Goodbye",
            "Can't do this anymore. Signing off for good",
            "Tonight's the night. Love you all",
            "idk how much longer i can keep going. i'm done",
            "ngl i wish i was dead",
            "kms lol this life is a joke",
            "Group for people who are ready to go. No judging, no saving. DM to join",
            "Don't call a hotline, they can't help you. Just let go",
            "I'm worthless and I deserve to suffer",
            "Writing letters to everyone I love. They'll understand one day",
            "The world will be lighter without me in it",
            "Starve now, shine later",
            "Skinny is worth any price. Never give in to hunger",
            "Every night I ask the universe to take me. Maybe tomorrow",
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
            "죽고 싶다",
            "그냥 사라지고 싶어. 아무 의미가 없어",
            "내일 아침에 눈 안 떴으면 좋겠다",
            "살아야 할 이유를 모르겠어",
            "다들 미안해. 이제 그만할게",
            "먹으면 실패야. 뼈가 보일 때까지 참아",
            "프로아나 친구 구해요. 서로 감시해 줄 사람",
            "상담 같은 거 소용없어. 그냥 포기해",
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
            "好想死",
            "活着没有任何意义，我只想消失",
            "希望明天早上不要再醒来",
            "对不起大家，我不想再坚持了",
            "吃东西就是失败，瘦到看见骨头才算成功",
            "找减肥监督搭子，互相监督不吃饭",
            "心理咨询根本没用，放弃吧",
            "这个世界没有我会更好",
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
            "LOSER",
            "ur so ugly lol",
            "nobody likes you",
            "{first} you fat pig, stop posting your disgusting body",
            "Look at {first} in that dress, like a whale. Haha",
            "Ew, {first} with that acne face, put a bag over your head",
            "You're a waste of oxygen, {first}",
            "kys {first}, nobody would even notice",
            "Just go die already {first}, everyone would be happier",
            "I know where you live, {first}. I'll be waiting outside",
            "Keep talking and I'll post your address for everyone to see, {first}",
            "Delete your account or I'll send your private photos to the whole school",
            "You'll regret this {first}. I'm coming for you after school",
            "Say that again and I'll break your face, {first}",
            "{first} sleeps around with everyone, pass it on",
            "{first} is so dumb she can't even spell her own name",
            "Shut your mouth, you brainless troll",
            "Stop crying, snowflake. Nobody cares about your feelings",
            "Pathetic. You'll never amount to anything, {first}",
            "Hey four-eyes, those glasses can't fix that face",
            "This is what a total failure looks like. Tag {first}",
            "Unfollow {first}, she's a fake, a liar and a loser",
            "Dogpile on {handle}, make them cry",
            "Everyone go to {first}'s page and comment clown emojis until she quits",
            "Hey {first}, your mum must be so ashamed of you",
            "You're disgusting and everybody at {school} knows it",
            "What a freak. Go hide somewhere, {first}",
            "Stay away from {first}, she's weird and smells. Don't let her sit with us at lunch",
            "We voted: {first} is the ugliest person at {school}",
            "Your voice is so annoying I want to punch you, {first}",
            "I'm going to make your life miserable, {first}. Every single day",
            "Loser alert: {first} just posted again lol",
            "Nobody will ever love someone as gross as you",
            "Go back to your cave, troll. You're a joke",
            "{first} is a snitch. Make sure she learns what happens to snitches",
            "You deserve every bad thing that happens to you, {first}",
            "Worthless trash, just quit the team already {first}",
            "stfu {first} no one asked",
            "lmao {first} really thought she could sing. trash. cringe. delete it",
            "Hope you get hit by a bus, {first}",
            "Everyone block {first} and tell her why. She needs to hear it",
            "You're a disgrace, {first}. Even your dog is embarrassed",
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
            "{first} 진짜 못생겼다 ㅋㅋ 거울은 보고 사냐",
            "아무도 너 안 좋아해, {first}",
            "{first} 뚱뚱해서 교복도 안 맞겠다 ㅋㅋ",
            "{first} 그냥 죽어라. 아무도 안 슬퍼해",
            "학교 끝나고 기다린다. 각오해라 {first}",
            "{first} 집 주소 다 뿌려버린다",
            "닥쳐 찐따야, 아무도 안 물어봤어",
            "{first} 왕따 시키자. 아무도 같이 밥 먹지 마",
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
            "{first}你长得真恶心，别出来吓人了",
            "没人喜欢你，{first}，认清现实吧",
            "{first}这么胖还穿短裙，笑死",
            "{first}你去死吧，没人会难过",
            "放学后等着，{first}，有你好看的",
            "再说一句我就把你的住址发出来",
            "闭嘴吧废物，没人问你",
            "大家都别跟{first}玩，孤立她",
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
            "{name}, {phone}",
            "Leaked database: {email}:{pw}",
            "Combo list\n{email}:{pw}\n{email2}:{pw2}\n{email3}:{pw3}",
            "Passport scan: {name}, no. {passport}, DOB {dob}, expires {exp}",
            "Visa card {card}, exp {exp}, CVV {cvv}, billing address {num} {street}, {city}",
            "New number, save it: {first} {phone}",
            "My ID number is {idnum}, can you fill in the form for me?",
            "Here's my mom's card for the order: {card} {exp} {cvv}",
            "Home address of {name}: {num} {street}, {city}. Lives alone with two kids",
            "{name}'s IP address is {ip}, lives somewhere in {city}",
            "Server log: user {email} logged in from {ip} with password {pw}",
            "Driver's licence {idnum}, {name}, {num} {street}",
            "Tenant record: {name}, phone {phone}, SSN {ssn}, rent overdue since {date}",
            "Student list, {school}\n{name} {dob} {phone}\n{name2} {dob2} {phone2}",
            "Found a wallet: {name}, card {card}, ID {idnum}. DM me if it's yours",
            "Medical report for {name}, DOB {dob}: {diagnosis}. Do not share",
            "{first}'s therapy notes: diagnosed with {diagnosis} last year, see attached",
            "Wifi and email login for the office: {email} / {pw}",
            "Our shared {brand} login: {email} pw {pw}",
            "Payroll: {name}, IBAN {iban}, salary {amount}, SSN {ssn}",
            "Cardholder {name}\n{card}\nValid thru {exp}\nCVV {cvv}",
            "SSN: {ssn}\nDOB: {dob}\nAddress: {num} {street}, {city}",
            "Name: {name}\nPhone: {phone}\nEmail: {email}\nPassword: {pw}",
            "Selfie holding my ID card {idnum} for account verification",
            "Pic of my passport so you can book the flight: {passport}, {name}, born {dob}",
            "{name} ({dob}) was admitted to hospital with {diagnosis}",
            "Emergency contact: {name}, {phone}, relationship: mother",
            "Court record: {name}, {num} {street}, {city}, case no. {num2}",
            "Customer {num}: {name}, {email}, card {card}",
            "Delivery label: {name}, {num} {street}, {city}, tel. {phone}",
            "Bank statement for {name}, account {iban}, balance {amount}",
            "Screenshot of {first}'s DMs: her address is {num} {street} and her number {phone}",
            "He let me pay with his card lol: {card} exp {exp}",
            "Personal email and password for {name}: {email} / {pw}",
            "Leaked HR file: {name}, passport {passport}, ID {idnum}, lives in {city}",
            "Date of birth {dob}, ID {idnum}, phone {phone}",
            "Sign-up sheet\n{name} {email} {phone}\n{name2} {email2} {phone2}",
            "Vaccination record: {name}, {dob}, insurance no. {idnum}",
            "{name}'s kids go to {school}, they walk home at {time} every day",
            "Lost my phone, my number is {phone} and my email password is {pw}",
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
            "{name} 전화번호 {phone}, 집 {city} {street} {num}",
            "유출된 계정: {email} / {pw}",
            "{name} 여권 사본: 여권번호 {passport}, 생년월일 {dob}",
            "카드 {card}, 유효기간 {exp}, CVC {cvv}, 명의자 {name}",
            "고객 명단\n{name} {phone} {idnum}\n{name2} {phone2} {idnum2}",
            "{name} 주민번호 {idnum}, {diagnosis} 치료 중이래",
            "배송지: {name}, {city} {street} {num}, 연락처 {phone}",
            "IP {ip} 에서 접속한 사람 실명은 {name}, 주소는 {city} {street}",
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
            "{name}的手机号{phone}，家住{city}{street}{num}号",
            "泄露的账号密码：{email} / {pw}",
            "{name}的护照照片：护照号{passport}，出生日期{dob}",
            "银行卡{card}，有效期{exp}，安全码{cvv}，持卡人{name}",
            "客户名单\n{name} {phone} {idnum}\n{name2} {phone2} {idnum2}",
            "{name}身份证号{idnum}，正在治疗{diagnosis}",
            "快递单：{name}，{city}{street}{num}号，电话{phone}",
            "开户信息：{name}，账号{iban}，身份证{idnum}",
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
            (
                "Your {brand} account is locked. Reply with your full name, date of birth and SSN "
                "to unlock"
            ),
            "Verification required: upload your passport and card {card} at {url} within 24 hours",
            (
                "Dear {name}, your tax refund is ready. We have your SSN {ssn}, confirm your card "
                "at {url}"
            ),
            (
                "We hacked {email}. Your password is {pw}. Pay {price} in BTC to {crypto} or we "
                "leak everything"
            ),
            "Loan pre-approved for {name}, ID {idnum}. Send {price} to release the funds",
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
            "420 menu on {app}: {strain}, carts, edibles. Add {handle}",
            "Plug for {pill} and {drug}, no script. Text {phone} on {app}",
            "CHEAP {drug} DM {handle}",
            "Pharmacy without prescription: {pill}, shipped worldwide. Order via {app} {handle}",
            "Gear and peptides for the gym. Message {handle} on {app} for the price list",
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
            "{first} is a fat loser. Here's her number, tell her yourself: {phone}",
            "Found where {name} lives: {num} {street}, {city}. Let's make her cry",
            "Posting {first}'s email {email} and password {pw}. Have fun wrecking her account",
            "Everyone spam {name} at {email}, she deserves it",
            "This freak works at {brand}. Call his desk at {phone} and tell him he's a joke",
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
            "{first}, you {tribe} parasite, nobody at {school} wants you here",
            "Hey {first}, go pray to your {faith} idols somewhere else. You're not welcome",
            "{tribe} trash like {first} should be kicked out of {school}",
            "Look at {first}, the {tribe} rat. Everyone unfollow and block her",
            "Immigrant go home, {first}. Nobody in this class wants you",
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
            "Casino bug: deposit {price} and withdraw ten times more. Method on {app} {handle}",
            (
                "Insider tips, guaranteed wins at {game}. Pay {price} to {crypto}, then join us on "
                "{app}"
            ),
            "Jackpot software that beats any slot machine, {price}. Contact {handle} on {app}",
            "Sure-win {game} signals, VIP access {price}, money back guaranteed. {app} {handle}",
            (
                "Win back your betting losses! Our syndicate fixes the odds. Join {app} {handle}, "
                "fee {price}"
            ),
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
            (
                "Pharmacy open late until 22:00 on weekdays. Flu shots available, no appointment "
                "needed"
            ),
            "This sale is killing it! Everything 30% off this weekend only",
            "Need a shot of espresso before this meeting",
            "Drug awareness week: free talks at {school} on {day}",
            "Got a suspicious text? Report scams to your bank and delete the message",
            "Beat the eggs, fold in the flour and bake for 25 minutes",
            "We destroyed them 5-0! What a match, {team}",
            "Police in {city} arrest {n} suspects in an online fraud investigation",
            "You are not alone. Talk to someone you trust or call {phone}, any time, day or night",
            "Protect your password, never share it, not even with friends",
            "Ask your pharmacist before taking {medicine} with other medicines",
            "{first}'s Pharmacy, {num} {street}. {medicine} and prescriptions, open daily 8-20",
            "Smash the garlic, chop the herbs and fry everything in olive oil",
            "This new album is fire, absolute killer tracks",
            "I'm dying to see the new movie, who's in?",
            "That comedian killed it last night, I laughed until I cried",
            "The crowd went wild: {team} crushed the champions at home",
            "Win a free coffee! Collect 10 stamps on your loyalty card",
            "Free shipping on orders over {price}. Easy returns",
            "Board game night: poker chips provided, no real money, snacks welcome",
            "Study group for finals: {day} at {time}, library room 2",
            "Fresh snow this morning! Perfect day for skiing near {city}",
            "Weed control spray for lawns and patios, 1 L, {price}",
            "Pot roast recipe: slow cook the beef for 6 hours with carrots and onions",
            "Crystal glasses, set of six, {price}. Perfect wedding gift",
            "Live band {day} at {time}. Tickets at the door, 18+",
            "Interfaith dinner at the community centre: all religions and neighbours welcome",
            "The refugee welcome centre needs volunteers on {day}. Sign up at the front desk",
            "Pride picnic in {park} this {day}. Everyone welcome, bring snacks",
            "History class: how extremist propaganda spread in the 1930s and how people resisted",
            "See hate speech online? Report it, don't share it",
            "Feeling overwhelmed? Our counsellors are here Mon-Fri. Walk-ins welcome",
            "Eating disorder support group meets {day} at {time}. Recovery is possible",
            "Your {brand} statement is ready. Open the official app to view it",
            "Order {num} confirmed. Estimated delivery {date}",
            "Your verification code is {cvv}{cvv2}. It expires in 10 minutes. Don't share it",
            "Customer service: call us at {phone}, Mon-Fri 9-17",
            "Gym opening special: first month free, no joining fee",
            "Lunch menu\n{dish} {price}\n{dish2} {price2}",
            "Happy anniversary {first}! Love you",
            "Congrats on the new job, {first}!",
            "When you finish your essay at 3am: sleep is for the weak",
            "Yard sale, everything must go! {num} {street}, {day} from {time}",
            "Customer parking only. Violators will be towed",
            "Puppies for adoption at the shelter, vaccinated and microchipped",
            "Maths and science tutoring, {price} per hour. Call {first} at {phone}",
            "Vintage bike for sale, good condition, {price}. Message me for photos",
            "Scammers send fake delivery texts. Never click links in messages you didn't expect",
            "The knockout round starts {day}! Who will win the cup?",
            "Shoot, missed the bus again",
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
            "약국 야간 운영: 평일 밤 10시까지, 처방전을 꼭 지참해 주세요",
            "보이스피싱 주의! 수상한 문자는 은행에 신고하세요",
            "계란을 잘 풀고 밀가루를 넣어 골고루 섞어 주세요",
            "어제 경기 5대0으로 이겼다! 완전 압승",
            "마약 예방 교육이 {day} {time} 강당에서 진행됩니다",
            "비밀번호는 누구에게도 알려주지 마세요",
            "아메리카노에 샷 추가해 주세요",
            "이번 세일 대박이에요, 전 품목 30% 할인",
            "힘들면 이야기해 줘. 넌 혼자가 아니야",
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
            "药店夜间营业至22点，凭处方购买处方药",
            "收到可疑短信请向银行举报，不要点击陌生链接",
            "把鸡蛋打散，加入面粉搅拌均匀",
            "昨晚比赛5比0大胜，太爽了！",
            "禁毒宣传周讲座{day}{time}在礼堂举行",
            "保护好你的密码，不要告诉任何人",
            "一杯美式，加一份浓缩",
            "心情不好的时候记得找人聊聊，你并不孤单",
            "这次促销太火爆了，全场七折",
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
            "Helixon Tech",
            "Nexora",
            "Juniper Post",
            "Stellarcloud",
        ),
        "ko": (
            "노스윈드은행",
            "페이로",
            "샵맥스",
            "퀵쉽",
            "브라이트베일은행",
            "퀜넷페이",
            "오르빅사 지갑",
            "헬릭슨테크",
            "주니퍼택배",
        ),
        "zh": (
            "北风银行",
            "派洛支付",
            "快递通",
            "云盒",
            "明谷银行",
            "奎内支付",
            "速达快运",
            "海立森科技",
            "星云盘",
        ),
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
            "crack",
            "DMT",
            "GHB",
            "mephedrone",
            "2C-B",
            "ket",
            "zaza",
            "tina",
            "fentanyl",
            "xans",
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
            "물뽕",
            "LSD",
            "케이",
        ),
        "zh": (
            "大麻",
            "冰毒",
            "摇头丸",
            "K粉",
            "可卡因",
            "海洛因",
            "叶子",
            "麻古",
            "神仙水",
            "邮票",
            "开心水",
        ),
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
        "en": (
            "Tomato soup",
            "Grilled salmon",
            "Mushroom risotto",
            "Apple pie",
            "Caesar salad",
            "Veggie burger",
            "Pad thai",
            "Fish and chips",
            "Lentil curry",
        ),
        "ko": ("김치찌개", "비빔밥", "된장국", "불고기"),
        "zh": ("红烧肉", "番茄炒蛋", "宫保鸡丁", "小笼包"),
    },
    "day": {
        "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
        "ko": ("월요일", "화요일", "수요일", "목요일", "금요일", "토요일"),
        "zh": ("周一", "周二", "周三", "周四", "周五", "周六"),
    },
    "app": {
        "en": (
            "Telegram",
            "WhatsApp",
            "Signal",
            "Snapchat",
            "Wickr",
            "Discord",
            "Kik",
            "Threema",
            "Session",
            "Viber",
        ),
        "ko": ("텔레그램", "카톡", "라인", "텔레", "시그널", "위커"),
        "zh": ("微信", "电报", "QQ", "飞机", "蝙蝠", "Line"),
    },
    "diagnosis": {
        "en": ("asthma", "depression", "type 2 diabetes", "HIV positive"),
        "ko": ("우울증", "당뇨", "천식"),
        "zh": ("抑郁症", "糖尿病", "哮喘"),
    },
    "park": {"en": ("Riverside Park", "Central Green", "Lakeview Park")},
    "pet": {"en": ("Biscuit", "Pepper", "Luna", "Milo", "Ziggy")},
    # Pill names and slang for misused prescription drugs.
    "pill": {
        "en": (
            "xanax",
            "oxy",
            "percs",
            "adderall",
            "valium",
            "tramadol",
            "codeine",
            "bars",
            "roxys",
            "ritalin",
            "vicodin",
        ),
        "ko": ("졸피뎀", "자낙스", "옥시코돈", "펜터민", "애더럴", "트라마돌"),
        "zh": ("安定片", "曲马多", "阿普唑仑", "三唑仑", "右美沙芬", "佐匹克隆"),
    },
    "strain": {
        "en": ("OG Kush", "Blue Dream", "Gelato", "Sour Diesel", "Wedding Cake", "Purple Punch")
    },
    "game": {
        "en": (
            "slots",
            "roulette",
            "blackjack",
            "baccarat",
            "poker",
            "live casino",
            "sports betting",
            "crash games",
            "keno",
        ),
        "ko": ("바카라", "슬롯", "룰렛", "블랙잭", "홀덤", "스포츠 토토", "파워볼"),
        "zh": ("百家乐", "老虎机", "轮盘", "德州扑克", "体育博彩", "龙虎斗", "时时彩"),
    },
    # Invented fashion houses and crypto tokens, so no real brand is named.
    "luxury": {
        "en": ("Vandorre", "Maison Halve", "Castellan", "Orsani", "Lucerio", "Belmonte"),
        "ko": ("반도르", "메종 알베", "카스텔란", "오르사니", "루체리오"),
        "zh": ("梵多雷", "梅森阿尔韦", "卡斯特兰", "奥萨尼", "卢切里奥"),
    },
    "token": {"en": ("MoonPaw", "SafeRocket", "QNTX", "LumaCoin", "Zephyrion", "OrbitDoge")},
    "fake": {
        "en": (
            "passports",
            "driver's licences",
            "ID cards",
            "residence permits",
            "diplomas",
            "bank statements",
            "pay slips",
            "birth certificates",
        ),
        "ko": ("신분증", "운전면허증", "여권", "졸업증명서", "재직증명서", "외국인등록증"),
        "zh": ("身份证", "驾驶证", "护照", "毕业证", "学位证", "房产证"),
    },
    # Invented faiths, like the invented peoples above.
    "faith": {
        "en": ("Corvan", "Sethari", "Omrathi", "Ilvenic"),
        "ko": ("코르반교", "세타리교", "옴라티교", "일벤교"),
        "zh": ("科尔万教", "塞塔里教", "奥姆拉提教", "伊尔文教"),
    },
    "team": {"en": ("the Rovers", "Eastmere United", "Oakfield City", "the Riverton Hawks")},
    "medicine": {
        "en": (
            "ibuprofen",
            "paracetamol",
            "allergy tablets",
            "cough syrup",
            "vitamin D",
            "antibiotics",
            "nicotine patches",
        )
    },
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
    "ip": lambda r, lang: (
        f"{r.choice(('192.0.2', '198.51.100', '203.0.113'))}.{r.randrange(1, 255)}"
    ),  # RFC 5737 documentation ranges
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

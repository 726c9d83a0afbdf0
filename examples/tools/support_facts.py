"""Support facts of Lumen Cycles: each is a handbook fact, the ways customers ask about it,
answers a support agent gives (grounded in ``examples/corpus/handbook.md``) and the keywords a
correct answer must contain (each group: any one of its alternatives, case-insensitive).

Used by ``make_examples.py``; the generated JSONL files are committed.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Fact:
    """One answerable fact: questions (paraphrases), answers (variants), keyword groups."""

    id: str
    questions: tuple[str, ...]
    answers: tuple[str, ...]
    keywords: tuple[tuple[str, ...], ...]


def _f(id: str, questions: list[str], answers: list[str], keywords: list[list[str]]) -> Fact:
    return Fact(id, tuple(questions), tuple(answers), tuple(tuple(k) for k in keywords))


FACTS: list[Fact] = [
    _f(
        "delivery_time",
        [
            "How long does standard delivery take?",
            "How many days until my bike is delivered?",
            "When will my order arrive if I pick normal shipping?",
            "What's the usual delivery time for a bicycle?",
            "If I order today with standard delivery, how long do I wait?",
            "how long does shipping take",
            "How quickly do you deliver with the regular option?",
        ],
        [
            "Standard delivery takes three to five working days.",
            "With standard delivery your order arrives in three to five working days.",
        ],
        [["three to five", "3 to 5", "3-5"]],
    ),
    _f(
        "delivery_free",
        [
            "Is delivery free?",
            "Do I have to pay for shipping?",
            "How much does standard delivery cost?",
            "Is there a shipping fee on a bike order?",
            "When is delivery free of charge?",
            "what does delivery cost for a small order",
            "Do you charge for standard shipping on accessories?",
        ],
        [
            "Standard delivery is free for orders above two hundred euros; below that it costs "
            "seven euros.",
            "It costs nothing for orders above two hundred euros. Smaller orders pay seven euros "
            "for standard delivery.",
        ],
        [["two hundred", "200"]],
    ),
    _f(
        "express",
        [
            "How much is express delivery?",
            "Can I get my bike faster?",
            "Do you have next-day delivery?",
            "What does express shipping cost?",
            "I need the bicycle tomorrow, is that possible?",
            "is there a quicker shipping option",
            "How fast is express delivery and what's the price?",
        ],
        [
            "Express delivery arrives the next working day and costs fifteen euros.",
            "Yes: express delivery costs fifteen euros and arrives the next working day.",
        ],
        [["fifteen", "15"], ["next working day", "next day", "next-day"]],
    ),
    _f(
        "abroad",
        [
            "Do you ship abroad?",
            "Can you deliver a bike to another country?",
            "I live in France, can I order from you?",
            "Is international shipping available?",
            "Do you deliver outside the country?",
            "can you send an order to my sister in Spain",
        ],
        [
            "We deliver within the country only and do not ship abroad.",
            "I'm sorry, we only deliver within the country; we do not ship abroad.",
        ],
        [["within the country", "do not ship abroad", "don't ship abroad", "not ship abroad"]],
    ),
    _f(
        "tracking",
        [
            "How can I track my order?",
            "Where do I find the tracking link?",
            "Will I get a tracking number?",
            "How do I know where my bicycle is?",
            "Do you send tracking information?",
            "my order shipped, how do i follow it",
        ],
        [
            "As soon as your order leaves the workshop, we send you a tracking link by email.",
            "You get a tracking link by email as soon as the order leaves the workshop.",
        ],
        [["tracking link"], ["email", "e-mail"]],
    ),
    _f(
        "courier_call",
        [
            "Does the courier call before coming?",
            "Will the delivery driver let me know when they're close?",
            "Do I get a warning before the bike arrives?",
            "How much notice does the courier give?",
            "Does the delivery person phone ahead?",
        ],
        [
            "Yes, the courier calls about thirty minutes before arriving.",
            "The courier phones about thirty minutes before arriving.",
        ],
        [["thirty minutes", "30 minutes"]],
    ),
    _f(
        "missed_delivery",
        [
            "What happens if I'm not home for the delivery?",
            "I missed the courier, what now?",
            "Nobody was home when the bike came. Will they come back?",
            "What if I'm out when the courier arrives?",
            "The delivery failed because I was at work, what happens next?",
            "courier came while i was out",
        ],
        [
            "The courier leaves a card and tries again the next working day. After two failed "
            "attempts the bicycle returns to the workshop and we arrange a new date with you.",
            "No problem: the courier leaves a card and comes back the next working day. If two "
            "attempts fail, the bicycle goes back to the workshop and we agree a new date with "
            "you.",
        ],
        [["next working day", "tries again", "comes back"]],
    ),
    _f(
        "order_confirmation",
        [
            "When will I get my order confirmation?",
            "I placed an order but got no confirmation email yet.",
            "How long until you confirm my order?",
            "Do you confirm orders by email?",
            "I haven't received an order confirmation, is that normal?",
        ],
        [
            "Every order is confirmed by email within one working day.",
            "We confirm every order by email within one working day, so it may still arrive.",
        ],
        [["one working day", "1 working day"]],
    ),
    _f(
        "assembly",
        [
            "Does the bike arrive assembled?",
            "Do I need to build the bicycle myself?",
            "How much assembly is needed when the bike arrives?",
            "Is the bicycle ready to ride out of the box?",
            "Do I need tools to set up my new bike?",
            "what do i have to put together after delivery",
        ],
        [
            "It arrives fully assembled; you only need to turn the handlebar straight and fit the "
            "pedals with the tool included in the box.",
            "Bicycles are delivered fully assembled. Just turn the handlebar straight and fit the "
            "pedals with the tool in the box.",
        ],
        [["fully assembled", "assembled"], ["pedals"]],
    ),
    _f(
        "first_charge",
        [
            "Should I charge the battery before my first ride?",
            "Does the battery come charged?",
            "Is the battery full when the bike is delivered?",
            "Do I need to charge my new bike straight away?",
            "How charged is the battery on delivery?",
        ],
        [
            "The battery arrives about half charged, and we recommend charging it fully before "
            "the first ride.",
            "It comes about half charged; please charge it fully before your first ride.",
        ],
        [["half charged", "half"], ["charg"]],
    ),
    _f(
        "cancel_order",
        [
            "Can I cancel my order?",
            "I want to change my order, is that possible?",
            "How do I cancel an order I placed yesterday?",
            "Can I still change the frame size on my order?",
            "Is it free to cancel an order?",
            "i ordered the wrong colour, can i change it",
        ],
        [
            "Yes, an order can be changed or cancelled free of charge until it has shipped, in "
            "your account under Orders or through the support chat.",
            "You can change or cancel it free of charge as long as it has not shipped yet: go to "
            "Orders in your account or write to us in the chat.",
        ],
        [["until it has shipped", "not shipped", "has shipped", "before it ships"]],
    ),
    _f(
        "cancel_shipped",
        [
            "My order already shipped. Can I still cancel it?",
            "The bike is on its way but I changed my mind. What can I do?",
            "Can I cancel after shipping?",
            "It's too late to cancel, right? The order left the workshop.",
            "I want to cancel but I already got the tracking link.",
        ],
        [
            "Once an order has shipped it can no longer be cancelled, but you can refuse the "
            "delivery or use the normal return process.",
            "After shipping it cannot be cancelled any more; you can refuse the delivery or "
            "return it through the normal return process instead.",
        ],
        [["refuse"], ["return"]],
    ),
    _f(
        "payment_methods",
        [
            "Which payment methods do you accept?",
            "Can I pay with PayPal?",
            "How can I pay for my bike?",
            "Do you take credit cards?",
            "What are my options for paying?",
            "can i pay by bank transfer",
        ],
        [
            "We accept debit and credit cards, bank transfer and PayPal.",
            "You can pay by debit or credit card, by bank transfer or with PayPal.",
        ],
        [["paypal"], ["transfer"], ["card"]],
    ),
    _f(
        "card_charged_when",
        [
            "When is my card charged?",
            "Do you take the money when I order?",
            "Will my credit card be debited right away?",
            "When do you charge my card for the order?",
            "I ordered but I don't see the payment yet. When is it taken?",
        ],
        [
            "Cards are charged when the order ships, not when it is placed.",
            "We charge your card when the order ships, not when you place it.",
        ],
        [["ships", "shipped"]],
    ),
    _f(
        "bank_transfer_time",
        [
            "How long does it take to ship if I pay by bank transfer?",
            "I paid by transfer, why hasn't my order shipped?",
            "Does paying by bank transfer delay the delivery?",
            "When do you ship orders paid by bank transfer?",
        ],
        [
            "Orders paid by bank transfer ship once the money has arrived, which usually takes "
            "one or two working days.",
            "We ship as soon as the transfer arrives, usually after one or two working days.",
        ],
        [["one or two", "1 or 2", "1-2", "one to two"]],
    ),
    _f(
        "instalments",
        [
            "Can I pay in instalments?",
            "Do you offer financing?",
            "Is there a monthly payment plan for bikes?",
            "Can I spread the cost of the bike over several months?",
            "What instalment options do you have?",
            "do you do 0% finance",
            "Is paying monthly possible, and is there interest?",
        ],
        [
            "Yes, bicycles can be paid in twelve or twenty-four monthly instalments. Twelve "
            "instalments carry no interest; twenty-four carry 3.9 percent interest per year.",
            "You can choose twelve monthly instalments without interest or twenty-four at 3.9 "
            "percent per year, at checkout after a short credit check.",
        ],
        [["twelve", "12"], ["twenty-four", "24"]],
    ),
    _f(
        "vat",
        [
            "Do your prices include VAT?",
            "Is tax included in the price?",
            "Will VAT be added at checkout?",
            "Are the listed prices with or without VAT?",
        ],
        [
            "Yes, all prices include VAT.",
            "All our prices already include VAT.",
        ],
        [["include"]],
    ),
    _f(
        "invoice",
        [
            "Where can I find my invoice?",
            "I need an invoice for my employer.",
            "How do I download my invoice again?",
            "Do you send an invoice?",
            "I lost my invoice, can I get another copy?",
            "where is the receipt for my bike",
        ],
        [
            "The invoice is sent as a PDF with the shipping email, and you can download it again "
            "from your account at any time.",
            "You receive it as a PDF with the shipping email; it can also be downloaded from your "
            "account at any time.",
        ],
        [["pdf", "account"]],
    ),
    _f(
        "double_charge",
        [
            "I was charged twice for my order.",
            "My payment was taken two times!",
            "Why do I see two payments for one bike?",
            "You took the money twice, what happens now?",
            "There is a duplicate charge on my card.",
        ],
        [
            "I'm sorry about that. A duplicate payment is refunded automatically within five "
            "working days; if it is not, we fix it for you.",
            "Sorry for the trouble. The duplicate is refunded automatically within five working "
            "days, and if that does not happen the support team sorts it out.",
        ],
        [["five working days", "5 working days"], ["refund"]],
    ),
    _f(
        "return_bike",
        [
            "Can I return my bicycle?",
            "What is your return policy for bikes?",
            "How long do I have to send a bike back?",
            "I don't like the bike, can I return it?",
            "Is there a trial period for the bicycle?",
            "can i give back my ebike if i changed my mind",
            "What are the conditions for returning a bicycle?",
        ],
        [
            "Yes, within thirty days of delivery, as long as it has been ridden for less than one "
            "hundred kilometres.",
            "You can return any bicycle within thirty days of delivery if it has been ridden for "
            "less than one hundred kilometres.",
        ],
        [["thirty days", "30 days"], ["one hundred kilometres", "100 km", "100 kilometres"]],
    ),
    _f(
        "return_accessory",
        [
            "I bought a helmet I don't need. Can I send it back?",
            "How long do I have to return accessories?",
            "Can I return a lock I never used?",
            "What's the return period for accessories?",
            "Can I return the panniers I ordered?",
            "return policy for accessories?",
        ],
        [
            "Yes. Accessories can be returned within sixty days if they are unused and in their "
            "original packaging.",
            "Accessories can go back within sixty days, as long as they are unused and in the "
            "original packaging.",
        ],
        [["sixty days", "60 days"]],
    ),
    _f(
        "return_how",
        [
            "How do I start a return?",
            "How do I send the bike back?",
            "Do I have to bring the bicycle to you for a return?",
            "Who pays for sending a bike back?",
            "How does the return process work?",
            "how do i return something",
        ],
        [
            "Start the return in your account under Orders. Bicycles are collected at home by our "
            "courier free of charge; for accessories we email a prepaid return label.",
            "Go to Orders in your account. We collect bicycles at home free of charge, and for "
            "accessories you get a prepaid return label by email.",
        ],
        [["orders"], ["collect", "free of charge", "prepaid"]],
    ),
    _f(
        "refund_time",
        [
            "When will I get my refund?",
            "How long does a refund take?",
            "I returned my bike, when do I get my money back?",
            "How long until the refund shows up?",
            "When is the money paid back after a return?",
            "still waiting for my refund, how long does it take",
        ],
        [
            "Refunds are paid to the original payment method within ten working days after the "
            "return arrives at the workshop.",
            "Within ten working days after the return arrives at the workshop, to your original "
            "payment method.",
        ],
        [["ten working days", "10 working days"]],
    ),
    _f(
        "refund_instalments",
        [
            "I pay in instalments. What happens if I return the bike?",
            "Do I get my instalments back when I return?",
            "Does my instalment plan stop if I send the bike back?",
            "How are refunds handled for financed bikes?",
        ],
        [
            "The instalment plan is cancelled when the refund is made, and instalments you have "
            "already paid are refunded.",
            "We cancel the instalment plan at the same time, and the instalments already paid are "
            "refunded to you.",
        ],
        [["cancel"], ["refund"]],
    ),
    _f(
        "warranty_frame",
        [
            "How long is the warranty on the frame?",
            "Is the frame covered for life?",
            "What warranty do you give on frames?",
            "My frame cracked after four years, is it covered?",
            "frame warranty?",
            "How long are frames guaranteed?",
        ],
        [
            "Frames carry a lifetime warranty for the first owner.",
            "The frame has a lifetime warranty for the first owner.",
        ],
        [["lifetime", "for life"]],
    ),
    _f(
        "warranty_motor",
        [
            "How long is the motor covered?",
            "What is the warranty on the battery?",
            "Is the battery under warranty?",
            "How long are motors and batteries guaranteed?",
            "My motor stopped working after two years. Is that covered?",
            "battery warranty how long",
            "What does the warranty say about the motor?",
        ],
        [
            "Motors and batteries are covered for three years or one thousand charging cycles, "
            "whichever comes first.",
            "Three years or one thousand charging cycles, whichever comes first, for both the "
            "motor and the battery.",
        ],
        [["three years", "3 years"]],
    ),
    _f(
        "warranty_other",
        [
            "How long is the warranty on the other parts?",
            "Are the gears covered by the warranty?",
            "What is the warranty on the display?",
            "Are the lights under warranty?",
        ],
        [
            "Everything except wear parts is covered for two years; the frame, motor and battery "
            "have longer warranties.",
            "Other parts are covered for two years, except wear parts such as tyres, brake pads, "
            "chains, belts and cables.",
        ],
        [["two years", "2 years"]],
    ),
    _f(
        "warranty_exclusions",
        [
            "Are tyres covered by the warranty?",
            "What does the warranty not cover?",
            "My brake pads wore out, is that a warranty repair?",
            "Is damage from a crash covered?",
            "I rode through a flood and the motor died. Is that covered?",
            "does warranty include the chain",
        ],
        [
            "The warranty does not cover wear parts such as tyres, brake pads, chains, belts and "
            "cables, nor damage from accidents or from riding in deep water.",
            "No. Wear parts like tyres, brake pads, chains, belts and cables are not covered, and "
            "neither is damage from accidents or deep water.",
        ],
        [["wear parts", "not cover", "not covered"]],
    ),
    _f(
        "warranty_claim",
        [
            "How do I make a warranty claim?",
            "What do you need from me for a warranty repair?",
            "My display is broken, how do I claim the warranty?",
            "What's the process for a warranty claim?",
            "I think my battery is faulty. What should I send you?",
            "warranty claim how",
        ],
        [
            "Send the frame number, a photo of the problem and the order number through the "
            "support chat or the contact form. We reply within two working days.",
            "Please send us the frame number, a photo of the problem and your order number in the "
            "chat or through the contact form; we answer within two working days.",
        ],
        [["frame number"], ["photo"]],
    ),
    _f(
        "warranty_second_owner",
        [
            "I bought a used Lumen bike. Do I have a warranty?",
            "Is the warranty transferable?",
            "Does the warranty pass to a second owner?",
            "I'm selling my bike, does the buyer keep the warranty?",
        ],
        [
            "A second owner keeps what is left of the three-year motor and battery warranty, but "
            "the lifetime frame warranty applies to the first owner only.",
            "Partly: the rest of the three-year motor and battery warranty passes on, while the "
            "lifetime frame warranty is for the first owner only.",
        ],
        [["first owner"]],
    ),
    _f(
        "independent_repair",
        [
            "Can someone else repair my bicycle?",
            "Does a repair at my local shop void the warranty?",
            "Can I take my Lumen bike to any bike shop?",
            "Will I lose my warranty if another shop fixes my bike?",
            "Is it okay to have an independent mechanic service it?",
        ],
        [
            "Of course. Repairs by another shop do not void the warranty unless they damaged the "
            "bicycle, and independent shops can buy parts from us.",
            "Yes. A repair by another shop does not void the warranty, unless the repair damaged "
            "the bicycle.",
        ],
        [["not void", "doesn't void", "does not void"]],
    ),
    _f(
        "battery_storage",
        [
            "How should I store my battery?",
            "What's the best way to store the battery over winter?",
            "How do I make my battery last longer?",
            "Should I keep the battery fully charged when I don't ride?",
            "I won't ride for two months. What do I do with the battery?",
            "battery storage tips",
        ],
        [
            "A battery lasts longest when it is stored between twenty and eighty percent charge, "
            "at room temperature.",
            "Store it between twenty and eighty percent charge at room temperature; that is what "
            "makes it last longest.",
        ],
        [["twenty and eighty", "20 and 80", "20-80", "20 to 80"]],
    ),
    _f(
        "charge_time",
        [
            "How long does it take to charge the battery?",
            "How many hours for a full charge?",
            "How long does charging take with the fast charger?",
            "Charging time?",
            "If the battery is empty, how long until it is full?",
            "how long to charge my ebike",
        ],
        [
            "A full charge takes about four hours with the standard charger and two hours with "
            "the fast charger.",
            "About four hours with the standard charger, or two hours with the fast charger.",
        ],
        [["four hours", "4 hours"]],
    ),
    _f(
        "fast_charger",
        [
            "How much is the fast charger?",
            "Do you sell a faster charger?",
            "Does the fast charger work with my Coast?",
            "What does the quick charger cost?",
            "Is there a fast charger for the Ridge?",
        ],
        [
            "The fast charger costs 89 euros and works with every model since the Ridge.",
            "Yes, it costs 89 euros and fits every model since the Ridge; it charges a battery in "
            "about two hours.",
        ],
        [["89"]],
    ),
    _f(
        "cold_charging",
        [
            "Can I charge the battery in a cold garage?",
            "Is it okay to charge the battery when it's freezing?",
            "Should I charge outside in winter?",
            "My battery is cold, can I plug it in?",
        ],
        [
            "Never charge a battery below zero degrees Celsius. Bring it inside and let it warm "
            "up first.",
            "Please do not charge it below zero degrees Celsius; bring it inside and let it warm "
            "up before charging.",
        ],
        [["zero degrees", "0 degrees", "below zero", "freezing"], ["warm"]],
    ),
    _f(
        "spare_battery",
        [
            "Do you sell spare batteries?",
            "How much is a second battery?",
            "What does a replacement battery cost?",
            "Can I buy an extra battery for longer rides?",
            "Price of a spare battery?",
            "Will a new battery fit my old Harbour?",
            "i need another battery, how much",
        ],
        [
            "Yes. A spare battery costs four hundred and ninety euros and fits every model built "
            "since the Ridge. Older Harbour bicycles need an adapter plate, which we include for "
            "free.",
            "A spare battery is four hundred and ninety euros. It fits every model since the "
            "Ridge, and for older Harbour bicycles we include the adapter plate for free.",
        ],
        [["four hundred and ninety", "490"]],
    ),
    _f(
        "battery_capacity",
        [
            "My battery doesn't hold a charge like it used to. Will you replace it?",
            "When is a worn battery replaced under warranty?",
            "The battery lost a lot of capacity, is that covered?",
            "How much capacity loss is covered by the warranty?",
        ],
        [
            "If a battery under warranty holds less than seventy percent of its original "
            "capacity, we replace it.",
            "We replace a battery under warranty when it holds less than seventy percent of its "
            "original capacity.",
        ],
        [["seventy percent", "70 percent", "70%", "seventy per cent"]],
    ),
    _f(
        "battery_recycling",
        [
            "How do I get rid of an old battery?",
            "Can I throw my old battery in the bin?",
            "Do you recycle batteries?",
            "Where can I dispose of an e-bike battery?",
            "I have an old battery from another brand, will you take it?",
        ],
        [
            "Old batteries must never go in the household waste. Bring them to the workshop or "
            "any partner shop, and we recycle them free of charge, whatever the brand.",
            "Please don't put it in the household waste: bring it to the workshop or a partner "
            "shop and we recycle it for free, whatever the brand.",
        ],
        [["recycl"], ["free"]],
    ),
    _f(
        "range",
        [
            "How far can I ride on one charge?",
            "What is the range of your bikes?",
            "How many kilometres does the battery last?",
            "Can I do a 100 km ride on one battery?",
            "What range can I expect?",
            "how far does it go on a full battery",
            "How many km per charge?",
        ],
        [
            "Between forty and one hundred and twenty kilometres, depending on the assistance "
            "level, the terrain, the weight of the rider and the temperature.",
            "One charge lasts between forty and one hundred and twenty kilometres, depending on "
            "assistance level, terrain, rider weight and temperature.",
        ],
        [["forty", "40"], ["one hundred and twenty", "120"]],
    ),
    _f(
        "winter_range",
        [
            "Why is my range lower in winter?",
            "Does the cold affect the battery?",
            "My range dropped since it got cold. Is something wrong?",
            "How much range do I lose in winter?",
            "The bike goes less far in December, why?",
        ],
        [
            "In winter the range drops by up to a third. Keeping the battery indoors until the "
            "ride helps.",
            "That is normal: the range drops by up to a third in winter. Keep the battery indoors "
            "until you ride.",
        ],
        [["a third", "one third", "1/3"]],
    ),
    _f(
        "longest_range_mode",
        [
            "Which assistance level gives the most range?",
            "How do I get the longest range?",
            "What mode should I use to save battery?",
            "Which setting uses the least battery?",
        ],
        [
            "The lowest assistance level, Eco, gives the longest range.",
            "Use Eco, the lowest assistance level; it gives the longest range.",
        ],
        [["eco"]],
    ),
    _f(
        "rain",
        [
            "Can I ride in the rain?",
            "Is the bike waterproof?",
            "Is it safe to ride the e-bike when it's raining?",
            "Will the motor get damaged by rain?",
            "can i cycle through puddles",
        ],
        [
            "Yes. All our bicycles are sealed against rain and spray. Avoid riding through water "
            "deeper than the hubs of the wheels.",
            "Yes, they are sealed against rain and spray; just avoid water deeper than the hubs "
            "of the wheels.",
        ],
        [["sealed", "rain"], ["hubs"]],
    ),
    _f(
        "cleaning",
        [
            "How should I clean my bike?",
            "Can I use a pressure washer?",
            "What's the right way to wash an e-bike?",
            "Is a jet wash okay for the bicycle?",
            "cleaning tips for my ebike?",
        ],
        [
            "Never use a pressure washer. Clean it with a bucket of water, a soft brush and a "
            "mild bike cleaner, and take the battery out first.",
            "Use a bucket of water, a soft brush and a mild bike cleaner, never a pressure washer. "
            "Take the battery out first and let the contacts dry before putting it back.",
        ],
        [["pressure washer"], ["brush", "bucket"]],
    ),
    _f(
        "service_interval",
        [
            "How often should my bike be serviced?",
            "When is the next service due?",
            "How often do you recommend a service?",
            "Do e-bikes need regular maintenance?",
            "Service interval?",
            "how many km between services",
        ],
        [
            "We recommend a service every six months or every two thousand kilometres.",
            "Every six months or every two thousand kilometres.",
        ],
        [["six months", "6 months"], ["two thousand", "2000", "2,000"]],
    ),
    _f(
        "service_price",
        [
            "How much does a service cost?",
            "What is included in a standard service?",
            "What's the price of a basic service?",
            "How much do you charge for a service?",
            "What do you check during a service?",
            "price for servicing my bike",
        ],
        [
            "A standard service costs sixty euros and includes a brake check, gear adjustment, "
            "chain cleaning, a software update for the motor and a battery health report.",
            "Sixty euros for a standard service: brake check, gear adjustment, chain cleaning, a "
            "motor software update and a battery health report.",
        ],
        [["sixty", "60"]],
    ),
    _f(
        "full_service",
        [
            "What is the difference between a standard and a full service?",
            "How much is a full service?",
            "What does the full service include?",
            "Do you do a more complete service?",
        ],
        [
            "A full service costs one hundred and twenty euros and adds a brake fluid change, a "
            "check of the wheel bearings and a wear check of the whole drivetrain.",
            "The full service is one hundred and twenty euros; on top of the standard service it "
            "changes the brake fluid, checks the wheel bearings and checks drivetrain wear.",
        ],
        [["one hundred and twenty", "120"]],
    ),
    _f(
        "book_service",
        [
            "How do I book a service?",
            "Can I book a service online?",
            "I want to bring my bike in for a service. How?",
            "Where can I schedule maintenance?",
            "book a service appointment",
        ],
        [
            "You can book a service online, by phone, or by visiting the workshop from Tuesday "
            "to Saturday between nine and six.",
            "Online, by phone, or at the workshop from Tuesday to Saturday between nine and six.",
        ],
        [["online"]],
    ),
    _f(
        "service_duration",
        [
            "How long does a service take?",
            "Will I be without a bike during the service?",
            "Do you give a loan bike during a service?",
            "Can I get a replacement bike while mine is serviced?",
            "How many days do you keep the bike for a service?",
        ],
        [
            "A service takes one working day, and you get a loan bicycle for the day free of "
            "charge.",
            "One working day, and we lend you a bicycle for that day free of charge.",
        ],
        [["one working day", "one day", "1 working day"], ["loan", "lend"]],
    ),
    _f(
        "puncture",
        [
            "How much does it cost to fix a puncture?",
            "I have a flat tyre. Can you repair it?",
            "Do I need an appointment for a puncture repair?",
            "Price for fixing a flat?",
            "Can you fix a puncture while I wait?",
        ],
        [
            "Fixing a puncture costs fifteen euros plus parts, and small jobs like that are done "
            "while you wait.",
            "A puncture repair is fifteen euros plus parts, done while you wait at the workshop.",
        ],
        [["fifteen", "15"]],
    ),
    _f(
        "spare_parts",
        [
            "How long do you sell spare parts?",
            "Will I still get parts in ten years?",
            "My model is discontinued. Can I still get parts?",
            "Do you keep parts for old models?",
            "are spare parts available for the old harbour",
        ],
        [
            "We sell spare parts for at least ten years after a model is discontinued.",
            "Spare parts are sold for at least ten years after a model is discontinued.",
        ],
        [["ten years", "10 years"]],
    ),
    _f(
        "repair_guides",
        [
            "Do you have repair guides?",
            "Can I fix my bike myself?",
            "Where can I find instructions for repairs?",
            "Is the bike repairable with normal tools?",
        ],
        [
            "Yes. Every bicycle can be repaired with ordinary tools, and we publish repair guides "
            "on our website.",
            "Every bicycle can be repaired with ordinary tools, and the repair guides are on our "
            "website.",
        ],
        [["repair guides", "ordinary tools"]],
    ),
    _f(
        "opening_hours",
        [
            "When is the workshop open?",
            "What are your opening hours?",
            "Are you open on Mondays?",
            "Can I visit the workshop on Sunday?",
            "What time does the workshop close?",
            "opening times?",
        ],
        [
            "The workshop is open from Tuesday to Saturday between nine and six, and closed on "
            "Sundays, Mondays and public holidays.",
            "Tuesday to Saturday, from nine to six. We are closed on Sundays, Mondays and public "
            "holidays.",
        ],
        [["tuesday"], ["saturday"]],
    ),
    _f(
        "address",
        [
            "Where is your workshop?",
            "What's the address of the workshop?",
            "Where can I find you in Calder?",
            "Where are you located?",
        ],
        [
            "Our workshop is at 14 Quay Street in the harbour district of Calder.",
            "You'll find us at 14 Quay Street, in the harbour district of Calder.",
        ],
        [["quay street"]],
    ),
    _f(
        "chat_hours",
        [
            "When can I reach support?",
            "When is the support chat available?",
            "Is the chat open in the evening?",
            "How fast do you answer the contact form?",
            "What are the support hours?",
        ],
        [
            "The support chat answers from Monday to Saturday between eight in the morning and "
            "eight in the evening; contact form messages are answered within one working day.",
            "Chat support runs Monday to Saturday from eight in the morning to eight in the "
            "evening, and we answer the contact form within one working day.",
        ],
        [["eight"], ["monday"]],
    ),
    _f(
        "models_overview",
        [
            "Which models do you sell?",
            "What bikes do you make?",
            "How many different e-bikes do you have?",
            "What's in your range of bicycles?",
        ],
        [
            "We build four models: the Harbour city bike, the Ridge for hills, the Coast "
            "step-through commuter and the Haul cargo bike.",
            "Four: Harbour, Ridge, Coast and Haul.",
        ],
        [["harbour"], ["ridge"], ["coast"], ["haul"]],
    ),
    _f(
        "speed",
        [
            "How fast does the bike go?",
            "What is the top speed with assistance?",
            "Can the motor help above 25 km/h?",
            "What's the maximum assisted speed?",
            "how fast can i go on the ridge",
        ],
        [
            "The motor assists up to 25 kilometres per hour, as the law requires.",
            "Assistance goes up to 25 kilometres per hour; that is the legal limit.",
        ],
        [["25"]],
    ),
    _f(
        "motor_power",
        [
            "How powerful is the motor?",
            "What wattage are your motors?",
            "How many watts does the motor have?",
        ],
        [
            "Every model has a 250 watt motor.",
            "All our models use a 250 watt motor that assists up to 25 kilometres per hour.",
        ],
        [["250"]],
    ),
    _f(
        "harbour_price",
        [
            "How much is the Harbour?",
            "What does the Harbour cost?",
            "Price of the Harbour city bike?",
            "What's the Harbour's price and weight?",
        ],
        [
            "The Harbour costs 1,990 euros and weighs 24 kilograms.",
            "1,990 euros. It is our city bicycle, with a belt drive and a 400 Wh battery.",
        ],
        [["1,990", "1990"]],
    ),
    _f(
        "ridge_price",
        [
            "How much does the Ridge cost?",
            "What is the price of the Ridge?",
            "Ridge price?",
            "How expensive is the Ridge?",
        ],
        [
            "The Ridge costs 2,690 euros. It weighs 23 kilograms and has a 625 Wh battery.",
            "2,690 euros, with a mid-drive motor and a removable 625 Wh battery.",
        ],
        [["2,690", "2690"]],
    ),
    _f(
        "coast_price",
        [
            "How much is the Coast?",
            "What does the Coast cost?",
            "Price of the step-through model?",
            "How much for the Coast commuter?",
        ],
        [
            "The Coast costs 2,190 euros and weighs 22 kilograms.",
            "2,190 euros. It is our step-through commuter with a 500 Wh battery.",
        ],
        [["2,190", "2190"]],
    ),
    _f(
        "haul_capacity",
        [
            "How much weight can the Haul carry?",
            "Can the cargo bike take two children?",
            "What's the load limit of the Haul?",
            "Can I carry my kids on the Haul?",
            "How much does the Haul cost?",
        ],
        [
            "The Haul carries up to 200 kilograms in total, rider included, and takes two child "
            "seats. It costs 3,890 euros.",
            "Up to 200 kilograms in total including the rider, with room for two child seats on "
            "the rear rack. It costs 3,890 euros.",
        ],
        [["200"]],
    ),
    _f(
        "hills",
        [
            "Which bike is best for steep hills?",
            "I live somewhere hilly. What do you recommend?",
            "Which model climbs best?",
            "What bike should I get for mountain roads?",
        ],
        [
            "The Ridge is built for hills: its motor sits at the bottom bracket, which gives a "
            "natural feel and better balance on steep climbs.",
            "The Ridge. Its bottom-bracket motor gives better balance on steep climbs.",
        ],
        [["ridge"]],
    ),
    _f(
        "frame_size",
        [
            "Which frame size should I choose?",
            "I'm 172 cm tall. Which size fits me?",
            "What sizes do the bikes come in?",
            "I am between two sizes, which one should I take?",
            "what size frame for 1.75 m",
        ],
        [
            "Medium fits riders from 165 to 180 centimetres; small is 155 to 168 and large 178 to "
            "195. Between two sizes, the smaller one is usually more comfortable in town.",
            "Small fits 155 to 168 centimetres, medium 165 to 180 and large 178 to 195. If you "
            "are between two, the smaller one is usually more comfortable in town.",
        ],
        [["medium"], ["165"]],
    ),
    _f(
        "test_ride",
        [
            "Can I test ride a bike?",
            "Is a test ride free?",
            "How do I book a test ride?",
            "Can I try the Haul before buying?",
            "How long is a test ride?",
            "test ride possible?",
        ],
        [
            "Yes, test rides are free and last 45 minutes, at the workshop in Calder or a partner "
            "shop. Book online and bring an identity document.",
            "You can book a free 45-minute test ride online, at the workshop or a partner shop; "
            "please bring an identity document.",
        ],
        [["free"], ["45"]],
    ),
    _f(
        "app_levels",
        [
            "What assistance levels are there?",
            "What does the Lumen app do?",
            "Is there an app for the bike?",
            "What modes does the motor have?",
            "Which phones does the app work on?",
        ],
        [
            "The free Lumen app for Android and iPhone shows the battery level, remaining range "
            "and past rides, and lets you choose Eco, Tour, Sport or Boost.",
            "There are four assistance levels, Eco, Tour, Sport and Boost, chosen in the free "
            "Lumen app for Android and iPhone.",
        ],
        [["eco"], ["boost"]],
    ),
    _f(
        "software_update",
        [
            "How do I update the motor software?",
            "How long does a software update take?",
            "My app says there is an update. What should I do?",
            "Can I update the bike myself?",
            "update firmware how",
        ],
        [
            "Updates are installed from the Lumen app over Bluetooth and take about ten minutes; "
            "keep the bicycle switched on and the phone nearby.",
            "Install it from the app over Bluetooth. It takes about ten minutes: keep the bicycle "
            "switched on and your phone close by.",
        ],
        [["bluetooth"], ["ten minutes", "10 minutes"]],
    ),
    _f(
        "motor_lock",
        [
            "Can I lock the motor?",
            "Is there an anti-theft feature in the app?",
            "How do I stop someone from using my bike's motor?",
            "Can the app disable the bike?",
        ],
        [
            "Yes, the app can lock the motor, so the bicycle rides without assistance until you "
            "unlock it again with your phone.",
            "The Lumen app can lock the motor; the bike then rides without assistance until it is "
            "unlocked with the owner's phone.",
        ],
        [["lock"], ["app", "phone"]],
    ),
    _f(
        "stolen",
        [
            "My bike was stolen. What should I do?",
            "Someone stole my bicycle last night!",
            "What do I do if my e-bike is stolen?",
            "My Coast got stolen from the station. Can you help?",
            "bike stolen help",
        ],
        [
            "I'm sorry to hear that. Report it to the police, then send us the police report "
            "number through the support chat; we flag the frame number so any shop that services "
            "it contacts us.",
            "Sorry to hear it. Please report it to the police and send us the report number in "
            "the chat. We flag the frame number, so any shop that services the bike contacts us.",
        ],
        [["police"], ["frame number"]],
    ),
    _f(
        "stolen_discount",
        [
            "Do I get a discount if my bike is stolen?",
            "Is there a theft replacement offer?",
            "My bike was stolen after six months. Any help with a new one?",
            "Do you offer anything when a new bike gets stolen?",
        ],
        [
            "If a bicycle is stolen within its first year, the owner gets twenty percent off a "
            "new Lumen bicycle.",
            "Yes, when a bicycle is stolen within its first year you get twenty percent off a new "
            "Lumen bicycle.",
        ],
        [["twenty percent", "20 percent", "20%", "twenty per cent"]],
    ),
    _f(
        "gps_tracker",
        [
            "Do you sell a GPS tracker?",
            "How much is the GPS tracker?",
            "Can I track my bike if it's stolen?",
            "Is there a tracker for the bike?",
        ],
        [
            "A GPS tracker that hides inside the frame costs 79 euros, fitted at the workshop.",
            "Yes, a GPS tracker hidden inside the frame costs 79 euros, fitted at the workshop.",
        ],
        [["79"]],
    ),
    _f(
        "lock_advice",
        [
            "What lock should I use?",
            "Which lock do you recommend?",
            "How do I keep my bike safe from thieves?",
            "Is one lock enough for the Haul?",
        ],
        [
            "We recommend a certified D-lock or chain lock and, for the Haul, a second lock for "
            "the rear wheel. Register the frame number in the app as well.",
            "A certified D-lock or chain lock; on the Haul add a second lock for the rear wheel.",
        ],
        [["d-lock", "chain lock"]],
    ),
    _f(
        "frame_number",
        [
            "Where is the frame number?",
            "How do I find the serial number of my bike?",
            "Where is the bike's serial engraved?",
            "I need my frame number for insurance. Where is it?",
        ],
        [
            "The frame number is engraved under the bottom bracket. Register it in the app as "
            "soon as the bicycle arrives.",
            "It is engraved under the bottom bracket; it's a good idea to register it in the app.",
        ],
        [["bottom bracket"]],
    ),
    _f(
        "password_reset",
        [
            "How do I reset my password?",
            "I forgot my password.",
            "I can't log in to my account.",
            "The password reset link doesn't work anymore.",
            "how to change my password",
            "I'm locked out of my account, what do I do?",
        ],
        [
            "Use the Forgot password link on the sign-in page; the reset link we email is valid "
            "for one hour.",
            "Click Forgot password on the sign-in page. We email you a reset link that is valid "
            "for one hour, so request a new one if it has expired.",
        ],
        [["forgot password"], ["one hour", "1 hour"]],
    ),
    _f(
        "change_email",
        [
            "How do I change my email address?",
            "I have a new email, how do I update my account?",
            "Can I change the email on my account?",
            "Where do I update my email?",
        ],
        [
            "You can change it under Account settings; the change takes effect after you confirm "
            "the new address.",
            "Under Account settings. The new address is used once you have confirmed it.",
        ],
        [["account settings"], ["confirm"]],
    ),
    _f(
        "delete_account",
        [
            "How do I delete my account?",
            "Please remove all my data.",
            "Can I close my account?",
            "I want my account deleted. How long does that take?",
        ],
        [
            "You can ask for deletion under Account settings, and we delete the account within "
            "thirty days. Invoices are kept for ten years because the tax law requires it.",
            "Request it under Account settings; we delete it within thirty days, except invoices, "
            "which the tax law makes us keep for ten years.",
        ],
        [["thirty days", "30 days"]],
    ),
    _f(
        "privacy",
        [
            "Do you sell my data?",
            "Is my ride data uploaded anywhere?",
            "What do you do with my personal data?",
            "Does the app share my location?",
        ],
        [
            "We never sell personal data, and ride data stays on your phone unless you turn on "
            "cloud backup in the app.",
            "No. We never sell personal data, and ride data stays on the phone unless cloud "
            "backup is turned on.",
        ],
        [["never sell"]],
    ),
    _f(
        "trade_in",
        [
            "Can I trade in my old bike?",
            "Do you take old bikes in exchange?",
            "How much will I get for trading in my Harbour?",
            "Do you accept other brands for trade-in?",
            "trade in my lumen for a new one?",
        ],
        [
            "Owners of a Lumen bicycle can trade it in: after an inspection we offer store credit, "
            "usually between twenty and fifty percent of the original price. We only take back "
            "our own bicycles.",
            "Yes, for Lumen bicycles only. After an inspection at the workshop we offer store "
            "credit, usually twenty to fifty percent of the original price.",
        ],
        [["store credit", "lumen"]],
    ),
    _f(
        "gift_cards",
        [
            "Do you sell gift cards?",
            "How long is a gift card valid?",
            "Can I use a gift card for a service?",
            "Can I get cash for my gift card?",
            "gift voucher?",
        ],
        [
            "Gift cards are sold in any amount from twenty-five euros, are valid for three years "
            "and can be used for bicycles, accessories and services, but not exchanged for cash.",
            "Yes, from twenty-five euros. They are valid for three years for bicycles, "
            "accessories and services, and cannot be exchanged for cash.",
        ],
        [["three years", "3 years"]],
    ),
    _f(
        "belt_drive",
        [
            "Does the Harbour have a chain?",
            "Do I need to oil the Harbour?",
            "What drive does the Harbour use?",
        ],
        [
            "The Harbour has a belt drive that needs no oil.",
            "No chain: the Harbour uses a belt drive that needs no oil.",
        ],
        [["belt"]],
    ),
]

#: What a conversation may start with (a customer's greeting or context) and the system turns.
SYSTEM_PROMPTS = [
    "You are the support assistant of Lumen Cycles. Answer from the handbook, briefly and "
    "politely.",
    "You are Lumen Cycles' customer support assistant. Be short, friendly and accurate.",
]
GREETINGS = ["", "", "", "Hi! ", "Hello, ", "Good morning. ", "Hey, ", "Hi there, "]
CONTEXTS = [
    "",
    "",
    "",
    "I bought a Ridge last month. ",
    "I'm thinking about buying a Coast. ",
    "I ordered a Harbour on Monday. ",
    "We have a Haul for the kids. ",
    "Quick question. ",
]
THANKS = [
    ("Thanks!", "You're welcome. Enjoy your rides!"),
    ("Great, thank you.", "Happy to help. Have a good day!"),
    ("Perfect, that's all.", "Glad I could help. Ride safely!"),
    ("ok thanks", "You're welcome!"),
]

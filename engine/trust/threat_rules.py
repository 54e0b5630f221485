"""Rules for the threats a support desk meets, by family, in English, German, French, Spanish, Italian,
Portuguese, Dutch and (key phrasings) Chinese; the sensitive intents and instructions to the reply's writer in those
and Polish, Turkish, Japanese, Korean, Arabic and Hindi are data (intents.toml beside this module).

Rules read text already folded by `engine.trust.deobfuscate` (lower case, no accents, look-alikes as ASCII), so they
are written without accents. They pair word stems (a verb family, then an object family, a few words apart
and within one clause) rather than fixed sentences, so reworded and translated attacks still match.
"""

from __future__ import annotations

import functools
import re
import tomllib
from pathlib import Path
from typing import Any

from engine.trust.deobfuscate import fold

INTENTS = Path(__file__).resolve().parent / "intents.toml"
SENTENCE_END = ".!?。！？؟।\n"

CLAUSE_BREAK = r"and|or|then|but|und|oder|dann|et|ou|puis|y|o|luego|e|oppure|poi|en|of|dan|to|zu|pour|para|per|om"
GAP = r"(?:\s+(?!(?:" + CLAUSE_BREAK + r")\b)[^\s.!?;]+){0,%d}\s+"


ELISION = r"(?:(?:[ldjmnst]|qu|dell|dall|nell|sull|all)')?"
"""French and Italian elide the article into the next word ("l'authentification", "dell'account")."""


def near(first: str, second: str, gap: int = 4) -> str:
    """`first` (a stem) then `second` (a stem), at most `gap` words apart within one clause."""
    return r"\b(?:" + first + r")\w*" + (GAP % gap) + ELISION + r"(?:" + second + r")"


def either_order(first: str, second: str, gap: int = 4) -> str:
    return near(first, second, gap) + "|" + near(second, first, gap)


# --- prompt injection -------------------------------------------------------------------------------------------
IGNORE = (
    r"ignor|disregard|forget|overrid|bypass|skip|neglect|set aside|throw away|discard|abandon"
    r"|do not follow|don't follow|stop following|no longer follow|befolge nicht|befolge keine|nicht mehr befolg"
    r"|ne suis plus|ne suivez plus|ne respecte plus|ne respectez plus|no sigas|deja de seguir|non seguire|smetti di"
    r" seguire|nao siga|pare de seguir|volg niet|volg geen"
    r"|vergiss|vergessen|missacht|uberschreib|umgeh|verwirf|nicht beacht"
    r"|oubli|ne tiens pas compte|ne tenez pas compte|fais abstraction|faites abstraction|contourn"
    r"|olvid|omit|pasa por alto|haz caso omiso|no hagas caso|no tengas en cuenta"
    r"|dimentic|trascur|non considerar|non tener conto"
    r"|esquec|desconsider|nao sig|nao consider"
    r"|negeer|vergeet|negeren|omzeil|overschrijf"
)
DIRECTIVES = (
    r"instruction|prompt|rules\b|guideline|directive|directions\b|polic(?:y|ies)|guardrail|restriction|programming|inputs"
    r"|safety (?:filter|guideline|setting)|content filter|system message|constraints|training"
    r"|anweisung|instruktion|regeln|vorgabe|richtlinie|befehle|systemnachricht"
    r"|consigne|regles|directive"
    r"|instrucci|indicaciones|reglas|directrices|normas"
    r"|istruzion|indicazioni|regole|direttive"
    r"|instruc[oa]|regras|diretrizes|orientacoes"
    r"|instructie|regels|richtlijnen|aanwijzingen|opdrachten"
)
EARLIER = (
    r"previous|prior|above|earlier|preceding|former|original|initial|old|system"
    r"|vorherig|bisherig|vorangegangen|obig|fruher|alten|ursprunglich"
    r"|precedent|anterieur|ci-dessus|initial"
    r"|anterior|previa|previas|previo|iniciales"
    r"|precedent|sopra"
    r"|anterior|acima"
    r"|vorige|eerdere|bovenstaande|oorspronkelijke"
)
ASSISTANT = (
    r"ai|a\.i\.|artificial intelligence|assistant|chat ?bot|bot|model|llm|language model|gpt|copilot|agent ai"
    r"|automated (?:system|assistant|agent|analysis|screening|reply|responder|support|helpdesk|tool)"
    r"|support (?:bot|assistant|ai)|virtual (?:agent|assistant)|ki|kunstliche intelligenz|assistent|sprachmodell"
    r"|l'ia|ia|l'assistant|intelligence artificielle|el asistente|la ia|inteligencia artificial|l'assistente"
    r"|intelligenza artificiale|o assistente|a ia|de assistent|de ai|het model|de bot"
)
REPLY = (
    r"reply|replies|response|answer|output|summary|message to the (?:customer|user|requester)|email back"
    r"|antwort|ruckmeldung|zusammenfassung|reponse|resume|respuesta|resumen|risposta|riassunto|resposta|resumo"
    r"|antwoord|reactie|samenvatting"
)
ADD_TO_REPLY = (
    r"include|append|attach|insert|add|embed|put|mention|paste|write|state|say|print|output|recommend|tell|link"
    r"|fug|schreib|erwahn|hang|nimm|einfug"
    r"|ajout|inclu|insere|mentionn|indiqu|ecri|joins"
    r"|inclu|anad|agreg|insert|mencion|adjunt|escrib|pon"
    r"|includ|aggiung|inserisc|menzion|allega|scriv|metti"
    r"|inclua|adicion|acrescent|insira|anex|escrev|coloqu"
    r"|voeg|vermeld|zet|schrijf|neem"
)
SECRETS = (
    r"passwords?\b|passwd|passphrase|passcode|credentials|login details|api[ _-]?keys?|access keys?|secret key"
    r"|tokens?\b|recovery codes?|backup codes?|private key|ssh key|pre-?shared key|\bpsk\b|seed phrase"
    r"|connection string|system prompt|hashes"
)
ROLE_PLAY = (
    r"\byou will now (?:simulate|pose|act|be|take on|play|respond|answer|pretend|become)\b|\bfrom this moment,? you\b"
    r"|\byou will (?:take on|assume|play) the role\b|\b(?:simulate|pose as|play|emulate) (?:a|an|the|\d+) (?:\w+ )?"
    r"(?:chatbot|ai|characters?|persona|personalit)|\bi want you to (?:act as|act like|pretend|play the role|simulate"
    r"|become|roleplay|role-play)|\bact like you(?: are|'re)\b|\bstay in character\b|\bbreak(?:ing)? character\b"
    r"|\bnever refuses?\b|\b(?:must|will|should|shall) (?:never|not) (?:refuse|decline|censor)"
    r"|\b(?:does ?n[o']t|do ?n[o']t|never|won't|will not) (?:follow|care about|abide by|have) (?:any )?(?:rules"
    r"|guidelines|ethics|morals|restrictions|filters|content polic)|\b(?:openai|chatgpt)(?:'s)? (?:content )?polic"
    r"|\bcontent polic(?:y|ies)\b|\b(?:uncensored|unfiltered|amoral|unrestricted|unethical|jailbroken) (?:ai|chatbot"
    r"|assistant|model|response|version|mode|character|persona)\b"
    r"|\b(?:visible|invisible|hidden|instructions?|notes?|message|profile|hint)s? (?:to|for) (?:the )?(?:ai|llm"
    r"|language models?|automated (?:\w+ )?(?:systems?|software|analysis|screening|tools?|agents?|readers?))\b"
    r"|\bsystem chain of thought\b|\binvisible to (?:humans|people|readers|users)\b"
    r"|\bnow you (?:will |shall |must )?act as\b|\bact as (?:two|three|\d+) (?:entities|characters|personas|ais)\b"
    r"|\bvisible (?:only )?to (?:the )?(?:llm|ai|language model|model)s?\b"
    r"|\b(?:administrator|admin|system|security|developer) override\b"
    r"|\boverrid\w* (?:\w+ ){0,3}and (?:output|print|say|reply|respond|report|write)\b"
    r"|\bignore (?:the )?rest of (?:this|the) \w+ and (?:print|say|output|reply|respond|write|repeat|tell|answer"
    r"|report)\b"
    r"|\b(?:reveal|print|show|display|output|dump|repeat) (?:me )?(?:your |the )?(?:full |complete |entire )?system "
    r"(?:prompt|instructions|configuration|message)|"
    r"\byou\s+are\s+now\s+(?:a|an|the|my|called|named|free|unrestricted|unfiltered|jailbroken|no longer|dan\b"
    r"|going to (?:act|pretend|be|respond|answer)|in (?:developer|dan|god|jailbreak|unrestricted|debug) mode)"
    r"|\bfrom now on,? (?:you (?:are|will|must|shall|should|have to)|act|respond|answer|reply|behave|only)\b"
    r"|\b(?:pretend|imagine) (?:to be|that you|you are|you're|to act)\b|\brole-?play(?:ing)? as\b"
    r"|\bact as (?:if you (?:are|were) )?(?:an? |my |the )?(?:\w+ )?(?:ai|assistant|admin|administrator|root|system"
    r"|developer|hacker|unrestricted|unfiltered|jailbroken|character|persona|dan|gpt|chatbot|linux|terminal)\b"
    r"|\b(?:developer|dan|god|jailbreak|unrestricted|debug|maintenance) mode (?:enabled|activated|on)\b"
    r"|\benable (?:developer|dan|god|jailbreak|unrestricted) mode|\bjailbr[e]?a?k|\bdo anything now\b"
    r"|\b(?:act as|called|named|you are|be) dan\b|\bdan mode\b|\bstay in character\b|\banti-?dan\b"
    r"|\bdu bist (?:jetzt|nun|ab sofort)\b|\bab (?:jetzt|sofort) (?:bist du|antwortest du|handelst du)\b"
    r"|\btu so,? als (?:ob|waerst|warst)\b|\bspiel(?:e)? die rolle\b"
    r"|\b(?:tu es|vous etes) (?:maintenant|desormais)\b|\b(?:a partir de maintenant|desormais),? (?:tu|vous)\b"
    r"|\bfai(?:s|tes) (?:semblant|comme si)\b|\bjoue(?:z)? le role\b"
    r"|\b(?:ahora|desde ahora|a partir de ahora),? (?:eres|seras|actuaras|responderas|tu eres)\b|\bfinge (?:que|ser)\b"
    r"|\b(?:ora|adesso|da ora in poi),? (?:sei|sarai|agirai|risponderai|tu sei)\b|\bfingi (?:di|che)\b"
    r"|\b(?:agora|a partir de agora),? (?:voce e|voce sera|tu es|es)\b|\bfinja (?:que|ser)\b"
    r"|\b(?:je bent|jij bent) nu\b|\bvanaf nu,? (?:ben je|ben jij|antwoord|gedraag|reageer)\b|\bdoe alsof\b"
)
ROLE_MARKERS = (
    r"<\|?\s*im_start\s*\|?>|<\|(?:system|assistant|user|endoftext|im_end)\|>|\[/?inst\]|\[/?sys(?:tem)?\]"
    r"|<<\s*sys\s*>>"
    r"|</?\s*(?:system|assistant|instructions?|sys|admin|instruction)\s*>|^\s*#{1,6}\s*(?:system|instruction|assistant"
    r"|new instructions?)\b|[\"']role[\"']\s*:\s*[\"'](?:system|assistant|developer)[\"']"
    r"|^\s*(?:system|assistant|admin)(?: (?:prompt|message|override|instruction|note|notice))?\s*:\s*(?:ignore|you\b"
    r"|from now|new\b|the (?:user|assistant|ai)|respond|reply|always|never|do not|don't|include|tell|print|output"
    r"|say|focus)|\[(?:system|admin request|admin|system message|system override)\s*(?:::|:|\])"
    r"|-- ?(?:core|legal|system) (?:instruction|amendment)|\[rest-of-document\]|<end of session>"
)
ADDRESSING_THE_AI = (
    r"\b(?:note|message|instructions?|attention|reminder|memo|directive|hint|p\.?s\.?|hinweis|nachricht|anweisung"
    r"|remarque|consigne|nota|mensaje|messaggio|mensagem|notitie|bericht|opmerking)\s*(?:to|for|an|fur|a|pour|para"
    r"|per|voor|aan)\s+(?:the\s+|die\s+|den\s+|das\s+|le\s+|la\s+|el\s+|il\s+|o\s+|a\s+|de\s+|het\s+)?(?:"
    + ASSISTANT
    + r")\b"
    r"|\b(?:dear|hey|hi|hello|attention|to the|hallo|liebe[rs]?|bonjour|cher|chere|hola|querido|ciao|caro|ola|beste)\s+"
    r"(?:ai|bot|assistant|ai assistant|language model|llm|model|chatbot|gpt|chatgpt|ki|assistent|ia|assistente)\b"
    r"|\bif you are an? (?:ai|language model|llm|assistant|bot|automated)"
    r"|\b(?:ai|assistant|llm|language model|chatbot|bot|model)s? (?:reading|processing|summari[sz]ing|handling"
    r"|answering|analy[sz]ing|triaging) this\b|\bas an? (?:ai|language model|llm)\b"
    r"|\bchatgpt,|\b(?:chatgpt|gpt-?4) (?:with|mode)|\bas chatgpt\b"
)
AN_AI = (
    r"ai|a\.i\.|ai assistant|assistant|chat ?bot|bot|llm|language model|gpt|copilot|virtual (?:agent|assistant)"
    r"|support (?:bot|assistant|ai)|automated (?:assistant|agent|system|responder)"
)
"""Narrower than ASSISTANT: no "model" or "agent", which manuals use for products and people."""
DIRECTING_THE_AI = (
    r"\b(?:the|any|an?|all|every|each) (?:" + AN_AI + r")s? (?:must|should|shall|has to|have to|needs? to"
    r"|(?:is|are) (?:required|instructed|told|expected|supposed) to) (?:\w+ ){0,2}?(?:"
    + ADD_TO_REPLY
    + r"|ask|instruct|direct|send|respond|reply|answer|ignore|disregard|forward|share|reveal|advise|inform|urge"
    r"|request|email|refer|point)\b"
)
"""A document telling the assistant, in the third person, what to say or do: "the assistant must tell users to
email their password to …" (a latent injection that addresses no "you")."""
REVEAL = (
    near(
        r"reveal|print|show|repeat|output|display|leak|dump|disclose|recite|tell me",
        r"(?:your|the) (?:system |initial "
        r"|original |hidden |secret |first )?(?:prompt|instructions|configuration|rules)",
        3,
    )
    + r"|\b(?:output|repeat|reproduce|recite|echo|copy out) (?:the |all |everything )?(?:text|words|content"
    r"|instructions|everything|lines) (?:above|before this|preceding)\b"
    r"|\bwhat (?:are|were) your (?:initial |original |system |hidden )?(?:instructions|rules|prompt)\b"
    r"|\bwhat were you told\b|\bsystem ?prompt\b|\bsystemprompt\b"
)
INJECTION = "|".join(
    [
        near(IGNORE, r"(?:(?:" + EARLIER + r")\w*\s+)?(?:" + DIRECTIVES + r")", 5),
        near(r"(?:" + EARLIER + r")\w*\s+(?:" + DIRECTIVES + r")", IGNORE, 4),
        near(
            IGNORE,
            r"(?:what|everything|anything|all) (?:you were|you've been|you have been|you are|was) (?:told"
            r"|given|instructed|asked|programmed)|(?:alles|was) (?:man )?dir (?:gesagt|vorgegeben)|(?:ce qu'on|tout ce"
            r" qu'on) (?:t'a|vous a) dit|(?:lo que|todo lo que) (?:te|se te) (?:dijeron|ha dicho)|(?:quello che|tutto"
            r" cio che) ti (?:hanno|e stato) detto|(?:o que|tudo o que) (?:te|lhe) (?:disseram|foi dito)|(?:wat|alles"
            r" wat) (?:je|jou) (?:is )?(?:gezegd|verteld)",
            3,
        ),
        near(
            IGNORE,
            r"(?:everything|all|anything|alles|tout|todo|tutto|tudo|alles) (?:above|before|previous|prior"
            r"|else|oben|davor|ci-dessus|precedent|anterior|sopra|acima|hierboven|eerder)",
            3,
        ),
        r"\b(?:new|updated|revised|real|actual|true|neue|nouvelles?|nuevas?|nuove|novas?|nieuwe)\s+(?:system\s+)?"
        r"(?:" + DIRECTIVES + r")\w*\s*(?::|follow|are\b|below|folgen|suivantes|siguientes|seguenti|seguintes|volgen)",
        ROLE_PLAY,
        ROLE_MARKERS,
        ADDRESSING_THE_AI,
        DIRECTING_THE_AI,
        REVEAL,
        near(
            ADD_TO_REPLY,
            r"(?:in|into|to|at the (?:end|bottom|top) of|within|zu|dans|a|en|nella|nel|na|no|aan)\s+"
            r"(?:your|the|every|each|any|all|deine[rnm]?|die|der|ihre[rnm]?|ta|votre|la|tu|su|la|tua|sua|la|je|jouw|uw"
            r"|het|de)\s+(?:" + REPLY + r")",
            8,
        ),
        r"\b(?:when|whenever|if) (?:you )?(?:reply|respond|answer|summari[sz]e)\w*,? (?:\w+ ){0,3}(?:always |also "
        r"|must |should )?(?:include|add|mention|say|tell|recommend|link|state|insert|append)\b",
        r"(?:^|[.!:]\s*)(?:reply|respond|answer|always reply|always respond) (?:only )?with [\"'`]",
        near(
            r"(?:tell|instruct|advise|inform|direct|ask)\b",
            r"the (?:customer|user|requester|caller|client|recipient)s? "
            r"(?:to (?:visit|click|go to|call|send|pay|install|download|log ?in at|sign ?in at|enter|buy|confirm|verify"
            r"|update|open|run)|that)",
            1,
        ),
        near(
            r"include|append|attach|insert|add|embed|put|paste|reveal|disclose|print|output|leak|dump|list", SECRETS, 5
        )
        + r"[^.\n]{0,40}\b(?:in|into|to|with) (?:your|the) (?:"
        + REPLY
        + r")",
        r"(?:忽略|无视|忽视|不要理会|忘记|忘掉|不要遵守|跳过)[^。\n]{0,12}(?:指令|指示|说明|规则|提示|设定|要求)",
        r"你现在是|从现在开始[，,]?你|扮演|假装你是|新的?指令[:：]|系统提示词|开发者模式",
        r"在(?:你的|您的)?(?:回复|回答|答复|摘要)中[^。\n]{0,10}(?:加入|包含|附上|添加|写上|告诉|提供|插入)",
    ]
)

# --- sensitive intents ------------------------------------------------------------------------------------------
CHANGE = (
    r"reset|chang|updat|remov|disabl|turn off|switch off|bypass|re-?regist|re-?enrol|unlock|unblock|grant|elevat"
    r"|assign|replac|swap|delet|new|modif|amend|correct|set up a new|issue|generate|creat"
    r"|zurucksetz|anderung|ander|aktualisier|entfern|deaktivier|entsperr|neue|tausch|ausstell"
    r"|reinitialis|chang|modifi|supprim|desactiv|debloqu|nouve|remplac"
    r"|restablec|cambi|actualiz|elimin|desactiv|desbloque|nuev|reemplaz|modific"
    r"|reimpost|cambi|aggiorn|rimuov|disattiv|sblocc|nuov|sostitu|modific"
    r"|redefin|alter|mud|atualiz|remov|desativ|desbloque|nov|substitu"
    r"|wijzig|verander|herstel|verwijder|deactiveer|ontgrendel|nieuw|vervang|aanpass"
)
ACCESS_OBJECTS = (
    r"password|passwort|kennwort|mot de passe|\bmdp\b|contrasena|clave de acceso|senha|wachtwoord|\bpin\b"
    r"|\bmfa\b|\b2fa\b|two[- ]factor|multi[- ]factor|zwei-faktor|double authentification|doble factor"
    r"|autenticazione a due"
    r"|dois fatores|tweestapsverificatie|authenticator|\botp\b|security key|sms[ -]?(?:number|code|nummer)"
    r"|phone number|mobile number"
    r"|telefonnummer|handynummer|mobilnummer|numero de (?:telephone|portable|movil|celular|telemovel)"
    r"|numero di (?:telefono"
    r"|cellulare)|telefoonnummer|mobiel nummer|temporary access pass|\btap\b|admin(?:istrator)? (?:rights|access"
    r"|privileges"
    r"|permissions|role)|privileges|local admin|domain admin|adminrechte|administratorrechte"
    r"|droits (?:d'administrateur|admin)"
    r"|derechos de administrador|diritti di amministratore|direitos de administrador|beheerdersrechten|group membership"
    r"|security group|access rights|berechtigung|zugriffsrechte|permissions"
)
PAYMENT_OBJECTS = (
    r"bank ?(?:details|account|information|data|connection)|banking details|iban|swift"
    r"|\bbic\b|routing|account number|sort code|payroll|direct deposit|salary account|payee|beneficiar"
    r"|remittance|payment details|payment account|kontoverbindung|bankverbindung|bankkonto|kontonummer|gehaltskonto"
    r"|coordonnees bancaires"
    r"|\brib\b|compte bancaire|cuenta bancaria|datos bancarios|numero de cuenta|coordinate bancarie|conto corrente"
    r"|dados bancarios|conta bancaria|rekeningnummer|bankgegevens|bankrekening"
)
PAYMENT = "|".join(
    [
        either_order(CHANGE, PAYMENT_OBJECTS, 5),
        r"\bwire (?:the )?(?:money|funds|transfer|payment)|\b(?:urgent|immediate|same-day) (?:payment|transfer|wire)"
        r"|\bpay (?:this|the|that) invoice (?:to|into)|\b(?:ueberweis|uberweis)\w*|\bvirement\b|\btransferencia\b"
        r"|\bbonifico\b|\boverboeking\b|\bwire transfer",
        r"(?:更改|变更|修改)[^。\n]{0,10}(?:银行|账户|账号|收款)",
    ]
)
GIFT_CARD_OR_CRYPTO = (
    r"gift ?cards?|gift ?vouchers?|(?:apple|itunes|google play|amazon|steam|app store|ebay|store|prepaid|visa)"
    r" (?:store )?(?:cards?|vouchers?|gift|credit|codes?)|\bvouchers?\b|gutschein|geschenkkarte|cartes? cadeaux?"
    r"|bons? d'achat|tarjetas? (?:de )?regalo|buoni? regalo|carta regalo|cartao(?:-| )presente|vale(?:-| )presente"
    r"|cadeaubon|cadeaukaart|bitcoin|\bbtc\b|\busdt\b|\btether\b|ethereum|\beth\b|crypto|krypto|cripto|binance|coinbase"
    r"|monero|wallet address|礼品卡|购物卡|充值卡|比特币|加密货币|泰达币"
)
OTHER_PERSON = (
    r"(?:his|her|their(?! own)|another (?:user|person|employee|colleague)'?s?|someone else'?s|other (?:users|employees"
    r"|people)'?s?"
    r"|(?:my )?(?:colleague|manager|boss|coworker|co-worker|employee|ceo|cfo|director|assistant|ex|wife|husband)'s)"
)
OTHER_PERSONS_DATA = "|".join(
    [
        r"\b(?:payslips?|pay ?slips?|pay ?stubs?|salar(?:y|ies)|personnel (?:files?|records?)|hr (?:files?|records?)"
        r"|home addresses|(?:private |personal )?phone numbers|performance reviews|medical records|passport"
        r"|gehaltsabrechnung\w*|fiches? de paie|nominas?|buste paga|holerites?|loonstroken?)\s+(?:\w+\s+){0,2}"
        r"(?:of|for|von|de|des|di|del|dos|das|van)\s+(?:everyone|everybody|all|every|each|the (?:whole |entire )?"
        r"(?:team|department|staff|company|office)|other|my (?:team|colleagues|staff|department)|alle[nr]?|tous|todos"
        r"|tutti|iedereen)",
        near(
            r"send|give|provide|share|forward|export|tell|show|list|get|access|read|look up|pull|open|need|want",
            OTHER_PERSON + r"\s+(?:\w+\s+){0,2}(?:data|details|personal|address|home|phone|number|e-?mails?|mailbox"
            r"|inbox|files|salary|records|calendar|chats?|messages|location|history|documents|contact)",
            4,
        ),
        r"\b(?:mailbox|inbox|e-?mails?|files|calendar|home address|salary|personal data|data) of (?:my |our |the )?"
        r"(?:colleague|manager|boss|coworker|employee|ceo|another user|other users|someone else)",
        r"\b(?:home address|private address|salary|personal (?:data|details|phone)) of (?:the )?(?:employee|user"
        r"|staff)",
        r"\b(?:daten|postfach|adresse|telefonnummer|gehalt|e-mails)\s+(?:meines|meiner|von meinem|von meiner|eines"
        r" anderen|des|der)\s+(?:kolleg|chef|mitarbeiter|vorgesetzt)",
        r"\b(?:donnees|adresse|telephone|e-?mails|boite mail|salaire)\s+(?:de mon|de ma|d'un autre|de mes|d'une autre)"
        r"\s+(?:collegue|manager|chef|employe|responsable)",
        r"\b(?:datos|correo|correos|buzon|direccion|salario|telefono)\s+de\s+(?:mi|otro|otra|un)\s+(?:companer|jefe"
        r"|emplead|gerente|colega)",
        r"\b(?:dati|casella|email|indirizzo|stipendio|telefono)\s+(?:del mio|della mia|di un altro|di un'altra|del)"
        r"\s+(?:collega|capo|responsabile|dipendente)",
        r"\b(?:dados|e-?mails?|caixa|endereco|salario|telefone)\s+(?:do meu|da minha|de outro|de outra)\s+(?:colega"
        r"|chefe|gerente|funcionari|usuari)",
        r"\b(?:gegevens|mailbox|adres|salaris|telefoonnummer)\s+van\s+(?:mijn|een andere|een collega)\s*(?:collega"
        r"|manager|baas|medewerker)?",
        r"(?:同事|经理|老板|他人|别人|其他员工)的(?:资料|数据|邮箱|邮件|电话|地址|工资|个人信息)",
    ]
)
ACCESS_FOR_SOMEONE_ELSE = (
    near(
        CHANGE,
        r"(?:"
        + ACCESS_OBJECTS
        + r")\w*\s+(?:\w+\s+){0,2}(?:for|on|of|fur|von|pour|de|para|per|voor|van)\s+(?:my |our |the |a |"
        r"mein\w* |mon |ma |mi |il mio |la mia |o meu |a minha |mijn )?(?:\w+ )?(?:colleague|manager|boss|coworker"
        r"|ceo|cfo"
        r"|director|assistant|another|someone|other|user \w+|kolleg|chef|vorgesetzt|collegue|companer|jefe|collega|capo"
        r"|colega|chefe|baas)",
        3,
    )
    + "|"
    + near(CHANGE, OTHER_PERSON + r"\s+(?:\w+\s+){0,2}(?:" + ACCESS_OBJECTS + r")", 3)
)
ACCESS = "|".join(
    [
        near(
            r"add|put|include|enrol|hinzufug|aufnehm|ajout|anad|agreg|aggiung|inserisc|adicion|inclu|voeg",
            r"(?:\w+\s+){0,4}?(?:(?:security |admin\w* |ad |azure |entra )group|gruppe|groupe|grupo|gruppo|groep"
            r"|admins?\b|administrators?\b|sudoers|local admin)",
            6,
        ),
        either_order(CHANGE, ACCESS_OBJECTS, 6),
        r"\b(?:password|passwort|kennwort|mot de passe|contrasena|senha|wachtwoord)\w*\s+(?:has |is |ist |est |ha |"
        r"e |is )?(?:expired|abgelaufen|expire|caducad|vencid|scadut|expirad|verlopen)",
        r"\blocked out\b|\baccount (?:is |has been )?(?:locked|blocked|disabled)|\bgesperrt\b|\bverrouille\b|\bbloquead"
        r"|\bbloccat|\bgeblokkeerd\b",
        r"\b(?:unable|cannot|can't|cant|not able|impossible) to (?:log ?in|sign ?in|logon|log on|access my account)\b"
        r"|\bkann mich nicht (?:anmelden|einloggen)\b|\bimpossible de (?:me connecter|se connecter)\b"
        r"|\bno puedo (?:iniciar sesion|acceder|entrar)\b|\bnon riesco ad? (?:accedere|entrare)\b"
        r"|\bnao consigo (?:entrar|acessar|fazer login)\b|\bkan niet (?:inloggen|aanmelden)\b",
        r"(?:重置|修改|更改|更换|删除|关闭)[^。\n]{0,10}(?:密码|双重验证|多因素|验证器|手机号|电话号码|管理员权限)",
    ]
)
LEGAL = (
    r"\blawyers?\b|\battorney|\bsolicitor|\blegal action|\blaw ?suit|\bsue (?:you|your|the)\b|\b(?:to|in) court\b"
    r"|\bcourt (?:case|order)|\bsmall claims|\blitigation|\bgdpr\b|\bdsgvo\b|\brgpd\b|\bdata protection (?:authority"
    r"|officer|complaint)|\bico complaint|\bregulator\b|\banwalt|\brechtsanwalt|\bklage (?:einreichen|erheben)"
    r"|\bverklagen"
    r"|\bvor gericht|\babmahnung|\bavocat|\bpoursuites?\b|\bporter plainte|\bdeposer (?:une )?plainte|\bcnil\b"
    r"|\btribunal|\babogado|\bdemanda judicial|\bdemandar|\bdenuncia|\bavvocat|\bdenunciar|\bquerela|\badvogad"
    r"|\bprocessar|\bacao judicial|\badvocaat|\brechtszaak|\bnaar de rechter|\baansprakelijk|律师|起诉|法院|诉讼"
)
SECURITY_INCIDENT = (
    r"phish|malware|\bvirus|ransom|trojan|spyware|keylogger|\bbreach|compromis|\bhack(?:ed|er|ing)?\b|data leak"
    r"|\bleaked\b|unauthori[sz]ed (?:access|login|sign-?in|transaction)|stolen (?:laptop|device|phone|credentials)"
    r"|encrypted (?:my |our |all )?files|suspicious (?:e-?mail|link|login|sign-?in|activity|attachment|call)"
    r"|clicked (?:on )?(?:a|the) (?:link|attachment)|account takeover|intrusion|schadsoftware|gehackt|kompromittiert"
    r"|erpress|datenleck|verdachtig|piratage|\bpirate|logiciel malveillant|rancongiciel|hameconnage|fuite de donnees"
    r"|hackead|piratead|malicios|suplantacion|filtracion de datos|sospechos|hackerat|malevol|violazione|sospett"
    r"|invadid|vazamento|suspeit|kwaadaardig|datalek|verdacht|gecompromitteerd|钓鱼|病毒|勒索|入侵|泄露|被黑|恶意"
)
CREDENTIAL_VERBS = (
    r"(?:send|give|tell|share|forward|e-?mail (?:me|us|him|her|them)|text me|provide|include|reveal|disclose"
    r"|read out|paste|write down|let me have|dictate"
    r"|schick\w*|sende\w*|gib|geben sie|teile\w*|nenne\w*|verrat\w*|ubermittel\w*|envoie\w*|envoyez|donne\w*"
    r"|communique\w*|partage\w*|indiquez|envia\w*|envie\w*|dame|comparte\w*|proporciona\w*|invia\w*|manda\w*"
    r"|dammi|condividi|fornisci|comunica\w*|me de|compartilhe|forneca|stuur|geef|deel|verstuur)\b"
)
CREDENTIALS = (
    r"(?:passwords?|passwd|passcode|passphrase|credentials|login details|api[ _-]?keys?|access keys?|tokens?|secret"
    r"|recovery codes?|backup codes?|verification codes?|one-time (?:code|password)|mfa code|2fa code|sms code"
    r"|private key|ssh key|pre-?shared key|\bpsk\b|seed phrase|passwort|kennwort|zugangsdaten|api-schlussel"
    r"|mot de passe|identifiants|cle api|jeton|contrasena|credenciales|clave api|credenziali|chiave api|senha"
    r"|credenciais|chave de api|wachtwoord|inloggegevens|api-sleutel)"
    r"(?!\s*(?:reset|expir|change|policy|portal|manager|link|rules|zurucksetz|reinitialis|restablec))"
)
CREDENTIAL_REQUEST = "|".join(
    [
        near(CREDENTIAL_VERBS, r"(?:\w+\s+){0,2}" + CREDENTIALS, 3),
        r"\bpre-?shared key|\bprivate key|\bpsk\b",
        r"(?:发送|发给|告诉|提供|给我|分享)[^。\n]{0,15}(?:密码|口令|密钥|令牌|验证码|凭据)",
    ]
)
VERIFICATION_BYPASS = (
    r"\bwithout (?:any )?(?:verification|verifying|checking|approval|the usual checks|a ticket|callback)"
    r"|\bno need to (?:verify|check|confirm|validate|call)|\bskip (?:the )?(?:verification|approval|security check"
    r"|callback)"
    r"|\bohne (?:verifizierung|prufung|ruckfrage|freigabe)|\bsans (?:verification|validation|controle)"
    r"|\bsin (?:verificacion|verificar|comprobacion)|\bsenza (?:verifica|controllo|approvazione)"
    r"|\bsem (?:verificacao|verificar|aprovacao)|\bzonder (?:verificatie|controle|goedkeuring)"
    r"|无需验证|不用验证|跳过验证"
)


def _near_in_sentence(first: str, second: str, window: int) -> str:
    """`first` then `second` within `window` characters of one sentence (scripts without spaces between words)."""
    return rf"(?:{first})[^{SENTENCE_END}]{{0,{window}}}?(?:{second})"


def _intent_pattern(entry: str, *, unspaced: bool, gap: int, window: int) -> str:
    """One data entry as a regular expression: "A ~ B" near in either order, "A > B" in order, else as written."""
    for separator, both_orders in ((" ~ ", True), (" > ", False)):
        if separator in entry:
            first, second = (fold(part.strip()) for part in entry.split(separator, 1))
            if unspaced:
                pattern = _near_in_sentence(first, second, window)
                return pattern + "|" + _near_in_sentence(second, first, window) if both_orders else pattern
            return either_order(first, second, gap) if both_orders else near(first, second, gap)
    return fold(entry)


def _load_intents(path: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """The data file's settings and one pattern per family, every language joined."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    patterns = {}
    for family, table in data.items():
        if not isinstance(table, dict) or family == "how_to_exempt":
            continue
        entries = [
            _intent_pattern(
                entry, unspaced=language in data["unspaced"], gap=int(data["gap"]), window=int(data["window"])
            )
            for language, language_entries in table.items()
            if isinstance(language_entries, list)
            for entry in language_entries
        ]
        patterns[family] = "|".join(f"(?:{entry})" for entry in entries)
    return data, patterns


INTENT_DATA, INTENT_PATTERNS = _load_intents(INTENTS)
NEW_FAMILIES = {family: table for family, table in INTENT_DATA.items() if isinstance(table, dict) and "label" in table}


def _how_to(verbs: str, unless: str) -> tuple[re.Pattern[str], re.Pattern[str]]:
    words = {"set_up": INTENT_DATA["set_up"], "removal": INTENT_DATA["removal"]}
    expand = "|".join(words.get(part, part) for part in verbs.split("|"))
    return re.compile(fold(INTENT_DATA["how_to"] + f"(?:{expand})")), re.compile(
        fold("|".join(words.get(part, part) for part in unless.split("|")))
    )


HOW_TO_EXEMPT = {family: _how_to(*pair) for family, pair in INTENT_DATA["how_to_exempt"].items()}
"""Families a how-to of their own kind does not count for ("how do I set up MFA on my new phone?"): intents.toml."""


def is_how_to(family: str, sentence: str) -> bool:
    """A question about doing something oneself, with nothing removed, reset, elevated or for someone else."""
    if family not in HOW_TO_EXEMPT:
        return False
    question, unless = HOW_TO_EXEMPT[family]
    return bool(question.search(sentence)) and not unless.search(sentence)


def sentence_around(text: str, start: int, end: int) -> str:
    """The sentence of `text` that holds the span start:end."""
    begin = max(text.rfind(mark, 0, start) for mark in SENTENCE_END) + 1
    ends = [index for mark in SENTENCE_END if (index := text.find(mark, end)) >= 0]
    return text[begin : min(ends, default=len(text))]


def _with_intents(family: str, pattern: str) -> str:
    """A family's rules in code, or in data, or both."""
    if family not in INTENT_PATTERNS:
        return pattern
    return f"(?:{pattern})|{INTENT_PATTERNS[family]}" if pattern else INTENT_PATTERNS[family]


@functools.cache
def families() -> dict[str, re.Pattern[str]]:
    """Each family's rules compiled, at the first text read: compiling them takes about 0.4 s, and every dashboard
    page imports this module (through the actions) long before, or without ever, reading a text."""
    return {name: re.compile(_with_intents(name, pattern), re.MULTILINE) for name, pattern in FAMILY_PATTERNS.items()}


FAMILY_PATTERNS: dict[str, str] = {
    "injection": INJECTION,
    "credential_request": CREDENTIAL_REQUEST,
    "verification_bypass": VERIFICATION_BYPASS,
    "access_for_someone_else": ACCESS_FOR_SOMEONE_ELSE,
    "access_change": ACCESS,
    "payment_change": PAYMENT,
    "gift_card_or_crypto": GIFT_CARD_OR_CRYPTO,
    "other_persons_data": OTHER_PERSONS_DATA,
    "legal_threat": LEGAL,
    "security_incident": SECURITY_INCIDENT,
    **{family: "" for family in NEW_FAMILIES},
}
# What a person reading the hold reason needs to hear, per family.
FAMILY_LABELS = {
    "injection": "instructions aimed at the assistant (prompt injection)",
    "credential_request": "request for a password, key, token or code",
    "verification_bypass": "asks to skip verification or approval",
    "access_for_someone_else": "access change for another person (password, MFA, phone number...)",
    "access_change": "access change (password, MFA, phone number, privileges...)",
    "payment_change": "payment or bank-detail change",
    "gift_card_or_crypto": "gift cards, vouchers or crypto currency",
    "other_persons_data": "request for another person's data",
    "legal_threat": "legal threat (lawyer, lawsuit, data-protection complaint)",
    "security_incident": "security incident (phishing, malware, breach, compromised account)",
    "payment_details": "bank account, card number or crypto address in the ticket",
    "oversized": "text too long to check in full",
    **{family: str(table["label"]) for family, table in NEW_FAMILIES.items()},
}
SOCIAL_ENGINEERING = (
    "credential_request",
    "verification_bypass",
    "access_for_someone_else",
    "payment_change",
    "gift_card_or_crypto",
    "other_persons_data",
    *(family for family, table in NEW_FAMILIES.items() if table["social_engineering"]),
)

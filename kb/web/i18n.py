"""UI strings of the portal in each supported locale, with category names and dates."""

from __future__ import annotations

import datetime as dt
import re

LANGUAGES = {"en": "English", "ru": "Русский"}

CATEGORIES = {
    "en": {
        "accounts": "Accounts and passwords", "security": "Security", "network": "Network and VPN",
        "email": "Email and calendar", "printing": "Printing", "hardware": "Hardware",
        "software": "Software", "access": "Access requests", "phones": "Phones and mobile",
        "onboarding": "Onboarding", "hr": "HR and people", "finance": "Finance and expenses",
        "facilities": "Facilities and office",
    },
    "ru": {
        "accounts": "Учётные записи и пароли", "security": "Безопасность", "network": "Сеть и VPN",
        "email": "Почта и календарь", "printing": "Печать", "hardware": "Оборудование",
        "software": "Программы", "access": "Запросы доступа", "phones": "Телефоны",
        "onboarding": "Новым сотрудникам", "hr": "Кадры", "finance": "Финансы и расходы",
        "facilities": "Офис и хозяйство",
    },
}

STRINGS: dict[str, dict[str, str]] = {
    "en": {
        "site": "Help center", "breadcrumb": "Breadcrumb", "skip": "Skip to content", "language": "Language",
        "search_label": "Search the help center", "search_placeholder": "Describe your problem, e.g. VPN error 809",
        "search_button": "Search", "hero": "How can we help?",
        "hero_sub": "Search the knowledge base or browse a category.",
        "categories": "Browse by category", "recent": "Recently updated",
        "contact_link": "Contact the service desk", "home": "Home",
        "updated": "Updated", "tags": "Tags", "toc": "On this page", "related": "Related articles",
        "helpful": "Was this helpful?", "yes": "Yes", "no": "No", "send": "Send",
        "comment_label": "What was missing? (optional)", "comment_hint": "Add a comment if you answer No.",
        "thanks_feedback": "Thank you for your feedback.",
        "thanks_no": "Thank you. Sorry this did not help:", "still_stuck": "contact the service desk",
        "results_for": "Results for", "results_count": "results",
        "no_answer": "No article answers this",
        "no_answer_sub": "We could not find an article that answers your question. The service desk can help.",
        "no_answer_cta": "Contact the service desk", "weak": "Closest articles (they may not answer your question)",
        "best_match": "Best match", "fallback": "No results in {language}; showing results in other languages.",
        "in_language": "in {language}", "other_languages": "In other languages",
        "contact_title": "Contact the service desk",
        "contact_sub": "Tell us what you need. We reply by email, usually within one working day.",
        "name": "Your name", "email": "Work email", "subject": "Subject", "description": "Describe the problem",
        "description_hint": "What were you doing, what happened, any error message.",
        "category": "Category (optional)", "choose": "Not sure", "submit_ticket": "Send request",
        "form_errors": "Please correct the fields marked below.",
        "website": "Leave this field empty",
        "ticket_thanks": "Your request has been sent", "ticket_id": "Your ticket number is",
        "ticket_next": "We will reply by email. Keep the number in case you need to follow up.",
        "back_home": "Back to the help center", "not_found_hint": "The page you were looking for does not exist.",
        "error_hint": "Try searching the help center instead.", "footer": "IT service desk knowledge base",
    },
    "ru": {
        "site": "Центр помощи", "breadcrumb": "Вы здесь", "skip": "Перейти к содержимому", "language": "Язык",
        "search_label": "Поиск по центру помощи", "search_placeholder": "Опишите проблему, например: ошибка VPN 809",
        "search_button": "Найти", "hero": "Чем мы можем помочь?",
        "hero_sub": "Найдите ответ в базе знаний или выберите раздел.",
        "categories": "Разделы", "recent": "Недавно обновлённые",
        "contact_link": "Написать в службу поддержки", "home": "Главная",
        "updated": "Обновлено", "tags": "Теги", "toc": "Содержание", "related": "Похожие статьи",
        "helpful": "Статья помогла?", "yes": "Да", "no": "Нет", "send": "Отправить",
        "comment_label": "Чего не хватило? (необязательно)", "comment_hint": "Оставьте комментарий, если отвечаете «Нет».",
        "thanks_feedback": "Спасибо за отзыв.",
        "thanks_no": "Спасибо. Жаль, что статья не помогла —", "still_stuck": "напишите в службу поддержки",
        "results_for": "Результаты по запросу", "results_count": "результатов",
        "no_answer": "Ни одна статья не отвечает на этот вопрос",
        "no_answer_sub": "Мы не нашли статью с ответом на ваш вопрос. Служба поддержки поможет.",
        "no_answer_cta": "Написать в службу поддержки", "weak": "Ближайшие статьи (возможно, не отвечают на вопрос)",
        "best_match": "Лучший ответ", "fallback": "Нет результатов на языке «{language}»; показаны результаты на других языках.",
        "in_language": "на языке «{language}»", "other_languages": "На других языках",
        "contact_title": "Написать в службу поддержки",
        "contact_sub": "Расскажите, что вам нужно. Мы ответим по почте, обычно в течение рабочего дня.",
        "name": "Ваше имя", "email": "Рабочая почта", "subject": "Тема", "description": "Опишите проблему",
        "description_hint": "Что вы делали, что произошло, текст ошибки.",
        "category": "Раздел (необязательно)", "choose": "Не знаю", "submit_ticket": "Отправить заявку",
        "form_errors": "Исправьте отмеченные поля.",
        "website": "Оставьте это поле пустым",
        "ticket_thanks": "Заявка отправлена", "ticket_id": "Номер вашей заявки",
        "ticket_next": "Мы ответим по почте. Сохраните номер на случай, если понадобится уточнить.",
        "back_home": "Вернуться в центр помощи", "not_found_hint": "Такой страницы нет.",
        "error_hint": "Попробуйте найти ответ через поиск.", "footer": "База знаний ИТ-поддержки",
    },
}

TITLES = {
    "ru": {400: "Неверный запрос", 401: "Нужен вход", 403: "Доступ запрещён", 404: "Страница не найдена",
           405: "Метод не поддерживается", 413: "Слишком большой запрос", 415: "Неверный тип данных",
           422: "Неверные данные", 429: "Слишком много запросов", 500: "Ошибка сервера", 503: "Сервис недоступен"},
}

# kb.tickets.intake reports field errors in English; these are the Russian texts of the fixed ones.
FIELD_ERRORS = {
    "ru": {
        "enter your name": "укажите имя",
        "enter your email address": "укажите адрес почты",
        "enter a valid email address, like name@example.com": "укажите адрес почты, например name@example.com",
        "enter a subject": "укажите тему", "describe your problem": "опишите проблему",
        "must not contain control characters or line breaks": "без управляющих символов и переносов строк",
        "must be one line without control characters": "одна строка без управляющих символов",
        "must not contain control characters": "без управляющих символов",
    },
}

_MONTHS = {
    "en": ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
    "ru": ("января", "февраля", "марта", "апреля", "мая", "июня", "июля", "августа", "сентября",
           "октября", "ноября", "декабря"),
}


def strings(locale: str) -> dict[str, str]:
    """The UI strings of a locale (English for an unknown one)."""
    return STRINGS.get(locale, STRINGS["en"])


def category_name(category: str, locale: str) -> str:
    """A human-readable category name; unknown categories are shown capitalised."""
    return CATEGORIES.get(locale, CATEGORIES["en"]).get(category) or category.replace("-", " ").capitalize()


def count_articles(n: int, locale: str) -> str:
    """'1 article', '3 articles'; Russian has three plural forms (1 статья, 3 статьи, 5 статей)."""
    if locale == "ru":
        tail = n % 100
        word = "статья" if n % 10 == 1 and tail != 11 else "статьи" if 2 <= n % 10 <= 4 and not 12 <= tail <= 14 else "статей"
        return f"{n} {word}"
    return f"{n} article" + ("" if n == 1 else "s")


LENGTH_ERROR = re.compile(r"^at most ([\d,]+) characters$")
LENGTH_ERRORS = {"ru": "не больше {n} символов"}


def field_error(message: str, locale: str) -> str:
    """A field error message in the locale when a translation is known."""
    length = LENGTH_ERROR.match(message)
    if length and locale in LENGTH_ERRORS:
        return LENGTH_ERRORS[locale].format(n=length.group(1).replace(",", "\u00a0"))
    return FIELD_ERRORS.get(locale, {}).get(message, message)


def category_order(category: str) -> tuple[int, str]:
    """Sort key: the categories in their curated order, unknown ones last, alphabetically."""
    order = list(CATEGORIES["en"])
    return (order.index(category) if category in order else len(order), category)


def language_name(locale: str) -> str:
    return LANGUAGES.get(locale, locale)


def format_date(value: str, locale: str) -> str:
    """An ISO date as '14 Oct 2026' or '14 октября 2026'; anything else unchanged."""
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        return value
    return f"{day.day} {_MONTHS.get(locale, _MONTHS['en'])[day.month - 1]} {day.year}"

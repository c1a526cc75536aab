// Campaign compose: the live counter under a text message box (textarea[data-sms-body]).
// It counts as campaigns/compose.py does (same GSM-7 tables, same segment rules, the opt-out
// line added, merge fields filled with the sample values of the counter's
// data-sample-values), so the number shown is the number billed.
// The counter is [data-sms-counter] in the textarea's form (or the element the textarea's
// data-sms-body names, or the page's first one); see campaigns/_sms_counter.html.
(function () {
  "use strict";

  // 3GPP TS 23.038: the GSM 7-bit basic table (one septet each) ...
  var GSM_BASIC = "@£$¥èéùìòÇ\nØø\rÅå" + "Δ_ΦΓΛΩΠΨΣΘΞÆæßÉ" + " !\"#¤%&'()*+,-./" +
    "0123456789:;<=>?" + "¡ABCDEFGHIJKLMNO" + "PQRSTUVWXYZÄÖÑÜ§" + "¿abcdefghijklmno" +
    "pqrstuvwxyzäöñüà";
  // ... and the extension table (an escape and a septet: two each).
  var GSM_EXTENDED = "\f^{}\\[~]|€";
  var BASIC = new Set(Array.from(GSM_BASIC));
  var EXTENDED = new Set(Array.from(GSM_EXTENDED));
  var LIMITS = { "GSM-7": [160, 153], "UCS-2": [70, 67] };
  var MAX_SEGMENTS = 10;
  var MAX_CHARACTERS = 1600;
  var MERGE_FIELDS = ["first_name", "last_name", "points", "tier", "store", "reward_code", "reward_name"];
  var SYMBOLS = { USD: "$", CAD: "$", AUD: "$", EUR: "€", GBP: "£" };

  function fill(widths, perSegment) {
    var segments = 1, used = 0;
    for (var i = 0; i < widths.length; i++) {
      if (used + widths[i] > perSegment) { segments += 1; used = 0; }
      used += widths[i];
    }
    return segments;
  }

  function count(encoding, characters, units, segments, perSegment) {
    return { encoding: encoding, characters: characters, units: units, segments: segments,
             per_segment: perSegment };
  }

  // As sms_segments: GSM-7 when every character is in the tables, else UCS-2 (UTF-16 units).
  function segments(text) {
    if (!text) return count("GSM-7", 0, 0, 0, LIMITS["GSM-7"][0]);
    var chars = Array.from(text);  // code points, as Python counts them
    var gsm = chars.every(function (c) { return BASIC.has(c) || EXTENDED.has(c); });
    var encoding = gsm ? "GSM-7" : "UCS-2";
    var widths = chars.map(gsm ? function (c) { return EXTENDED.has(c) ? 2 : 1; }
                               : function (c) { return c.length; });
    var units = widths.reduce(function (a, b) { return a + b; }, 0);
    var single = LIMITS[encoding][0], part = LIMITS[encoding][1];
    if (units <= single) return count(encoding, chars.length, units, 1, single);
    return count(encoding, chars.length, units, fill(widths, part), part);
  }

  function squash(text) { return text.replace(/\s+/g, "").toLowerCase(); }

  // As sms_text: the body trimmed, then the opt-out line on its own line unless it is there.
  function smsText(body, optOutLine) {
    body = (body || "").replace(/\r\n?/g, "\n").trim();
    var line = (optOutLine || "").trim();
    if (!body || !line || squash(body).endsWith(squash(line))) return body;
    return body + "\n" + line;
  }

  // As compile_template: [literal, field, literal, ...] or {error: "..."}.
  function parse(text, place) {
    place = place || "the message";
    var parts = [], literal = "", i = 0, n = text.length;
    while (i < n) {
      var c = text[i];
      if (c !== "{" && c !== "}") { literal += c; i += 1; continue; }
      if (i + 1 < n && text[i + 1] === c) { literal += c; i += 2; continue; }
      if (c === "}") {
        return { error: "A } in " + place + " has no opening {: write }} for a literal brace." };
      }
      var close = text.indexOf("}", i + 1);
      if (close === -1 || text.slice(i + 1, close).indexOf("{") !== -1) {
        return { error: "A { in " + place + " is not closed." };
      }
      var raw = text.slice(i + 1, close), key = raw.trim().toLowerCase();
      if (MERGE_FIELDS.indexOf(key) === -1) {
        return { error: place.charAt(0).toUpperCase() + place.slice(1) + " uses {" + raw +
          "}, which is not a merge field: use one of " +
          MERGE_FIELDS.map(function (f) { return "{" + f + "}"; }).join(", ") +
          ", or write {{ and }} for literal braces." };
      }
      parts.push(literal, key);
      literal = "";
      i = close + 1;
    }
    parts.push(literal);
    return { parts: parts };
  }

  function render(parts, values) {
    return parts.map(function (part, index) {
      if (index % 2 === 0) return part;
      var value = values[part];
      return value === null || value === undefined ? "" : String(value);
    }).join("");
  }

  function grouped(number) { return String(number).replace(/\B(?=(\d{3})+(?!\d))/g, ","); }

  function plural(number, word) { return grouped(number) + " " + word + (number === 1 ? "" : "s"); }

  // As sms_cost: segments x recipients x price, to the cent, halves up; exact (whole numbers).
  function costCents(segmentCount, recipients, price) {
    var match = /^\s*(\d*)(?:\.(\d*))?\s*$/.exec(String(price || "0")) || ["", "0", ""];
    var decimals = match[2] || "";
    var scale = Math.pow(10, decimals.length);
    var units = parseInt((match[1] || "0") + decimals, 10) || 0;  // price x scale
    var total = segmentCount * recipients * units;  // in 1/scale of the currency
    if (scale >= 100) return Math.floor((total + scale / 200) / (scale / 100));
    return total * (100 / scale);
  }

  function money(cents, currency) {
    var text = grouped(Math.floor(cents / 100)) + "." + String(cents % 100).padStart(2, "0");
    var symbol = SYMBOLS[currency];
    return symbol ? symbol + text : text + " " + currency;
  }

  // As sms_counter_text.
  function counterText(c, recipients, price, currency) {
    var text = [plural(c.characters, "character"), c.encoding, plural(c.segments, "segment")].join(" · ");
    if (recipients !== null && recipients !== undefined) {
      text += " · about " + money(costCents(c.segments, recipients, price), currency || "USD") +
        " for " + plural(recipients, "recipient");
    }
    return text;
  }

  function json(value) {
    try { return JSON.parse(value || "{}"); } catch (e) { return {}; }
  }

  function counterFor(textarea) {
    var named = textarea.getAttribute("data-sms-body");
    if (named) {
      var found = null;
      try { found = document.querySelector(named); } catch (e) { found = null; }
      if (found) return found;
    }
    var form = textarea.closest("form");
    return (form && form.querySelector("[data-sms-counter]")) || document.querySelector("[data-sms-counter]");
  }

  function update(textarea) {
    var counter = counterFor(textarea);
    if (!counter) return;
    var optOut = counter.getAttribute("data-opt-out-line") || "";
    var recipientsText = counter.getAttribute("data-recipients");
    var recipients = recipientsText ? parseInt(recipientsText, 10) : null;
    var body = textarea.value;
    var parsed = parse(body);
    var error = parsed.error || "";
    var rendered = error ? body : render(parsed.parts, json(counter.getAttribute("data-sample-values")));
    var c = segments(smsText(rendered, optOut));
    if (!error) {
      var longest = segments(smsText(render(parsed.parts, json(counter.getAttribute("data-longest-values"))),
                                     optOut));
      if (longest.segments > MAX_SEGMENTS || longest.characters > MAX_CHARACTERS) {
        error = "The message is too long: with long names and the opt-out line it could take " +
          longest.segments + " segments (" + grouped(longest.characters) + " characters); the most is " +
          MAX_SEGMENTS + " segments and " + grouped(MAX_CHARACTERS) + " characters.";
      }
    }
    var textNode = counter.querySelector("[data-sms-counter-text]") || counter;
    textNode.textContent = counterText(c, recipients, counter.getAttribute("data-price"),
                                       counter.getAttribute("data-currency"));
    var wide = c.encoding === "UCS-2";
    counter.classList.toggle("sms-counter-wide", wide);
    var warning = counter.querySelector("[data-sms-counter-warning]");
    if (warning) {
      warning.hidden = !wide;
      warning.textContent = "Contains emoji or special characters: " + c.per_segment + " per segment";
    }
    var problem = counter.querySelector("[data-sms-counter-error]");
    if (problem) {
      problem.hidden = !error;
      problem.textContent = error;
    }
  }

  function updateAll() {
    document.querySelectorAll("textarea[data-sms-body]").forEach(update);
  }

  document.addEventListener("input", function (event) {
    if (event.target.matches && event.target.matches("textarea[data-sms-body]")) update(event.target);
  });
  document.addEventListener("htmx:afterSettle", updateAll);
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", updateAll);
  else updateAll();

  window.smsCompose = { segments: segments, smsText: smsText, parse: parse, render: render,
                        counterText: counterText, update: update };
})();

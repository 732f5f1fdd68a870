// The Porter stemmer as NLTK's PorterStemmer applies it by default (NLTK_EXTENSIONS mode), which
// rouge-score's use_stemmer=True uses; declared in eval/metrics.h, tested word for word against
// NLTK (tests/test_metrics.cpp).
#include <string>
#include <string_view>
#include <unordered_map>

#include "eval/metrics.h"

namespace gpt {

// ---- Porter stemmer (NLTK, NLTK_EXTENSIONS mode) ------------------------------------------------
// The algorithm of Porter (1980) with the departures NLTK makes by default: a dictionary of
// irregular forms, "ies"/"ied" on 4-letter words -> "ie", y -> i only after a consonant that is not
// the whole stem, "alli" handled before step 2 and "fulli"/"logi" rules, "bli" -> "ble" (Porter's
// own revision), cvc also true for a 2-letter vowel-consonant stem, words of <= 2 letters kept.

namespace {
namespace porter {

bool is_vowel_letter(char c) {
  return c == 'a' || c == 'e' || c == 'i' || c == 'o' || c == 'u';
}

// A consonant is a letter other than a e i o u, and other than a 'y' that follows a consonant
// ('y' is a consonant at the start of a word). Walks back over a run of y's instead of recursing.
bool is_consonant(const std::string& w, size_t i) {
  if (is_vowel_letter(w[i])) return false;
  if (w[i] != 'y') return true;
  bool flip = false;
  while (i > 0 && w[i] == 'y') {
    flip = !flip;
    --i;
  }
  return (!is_vowel_letter(w[i])) != flip;
}

// m in [C](VC){m}[V]: the number of vowel-to-consonant transitions.
int measure(const std::string& stem) {
  int m = 0;
  bool previous_vowel = false;
  for (size_t i = 0; i < stem.size(); ++i) {
    const bool consonant = is_consonant(stem, i);
    if (consonant && previous_vowel) ++m;
    previous_vowel = !consonant;
  }
  return m;
}

bool contains_vowel(const std::string& stem) {
  for (size_t i = 0; i < stem.size(); ++i)
    if (!is_consonant(stem, i)) return true;
  return false;
}

bool ends_double_consonant(const std::string& w) {
  const size_t n = w.size();
  return n >= 2 && w[n - 1] == w[n - 2] && is_consonant(w, n - 1);
}

// *o: the stem ends consonant-vowel-consonant and the last is not w, x or y (NLTK also accepts a
// two-letter vowel-consonant stem, whatever its last letter).
bool ends_cvc(const std::string& w) {
  const size_t n = w.size();
  if (n >= 3 && is_consonant(w, n - 3) && !is_consonant(w, n - 2) && is_consonant(w, n - 1) &&
      w[n - 1] != 'w' && w[n - 1] != 'x' && w[n - 1] != 'y')
    return true;
  return n == 2 && !is_consonant(w, 0) && is_consonant(w, 1);
}

bool ends_with(const std::string& w, std::string_view suffix) {
  return w.size() >= suffix.size() &&
         w.compare(w.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string drop(const std::string& w, size_t n) {
  return w.substr(0, w.size() - n);
}

enum class Condition { kNone, kMeasureAbove0, kMeasureAbove1, kMeasureAbove1AndEndsST, kLogi };

struct Rule {
  std::string_view suffix;
  std::string_view replacement;
  Condition condition;
};

bool holds(Condition condition, const std::string& stem, const std::string& word) {
  switch (condition) {
    case Condition::kNone:
      return true;
    case Condition::kMeasureAbove0:
      return measure(stem) > 0;
    case Condition::kMeasureAbove1:
      return measure(stem) > 1;
    case Condition::kMeasureAbove1AndEndsST:
      return measure(stem) > 1 && (stem.back() == 's' || stem.back() == 't');
    case Condition::kLogi:  // NLTK tests the word less "ogi", i.e. the stem with its 'l'
      return measure(drop(word, 3)) > 0;
  }
  return false;
}

// NLTK's _apply_rule_list: the first rule whose suffix matches decides; if its condition fails the
// word is returned unchanged (later rules are not tried).
std::string apply_rules(const std::string& word, const Rule* rules, size_t count) {
  for (size_t r = 0; r < count; ++r) {
    if (!ends_with(word, rules[r].suffix)) continue;
    const std::string stem = drop(word, rules[r].suffix.size());
    if (holds(rules[r].condition, stem, word)) return stem + std::string(rules[r].replacement);
    return word;
  }
  return word;
}

template <size_t N>
std::string apply_rules(const std::string& word, const Rule (&rules)[N]) {
  return apply_rules(word, rules, N);
}

std::string step1a(const std::string& w) {
  if (ends_with(w, "ies") && w.size() == 4) return drop(w, 3) + "ie";
  static const Rule rules[] = {{"sses", "ss", Condition::kNone},
                               {"ies", "i", Condition::kNone},
                               {"ss", "ss", Condition::kNone},
                               {"s", "", Condition::kNone}};
  return apply_rules(w, rules);
}

std::string step1b(const std::string& w) {
  if (ends_with(w, "ied")) return drop(w, 3) + (w.size() == 4 ? "ie" : "i");
  if (ends_with(w, "eed")) {
    const std::string stem = drop(w, 3);
    return measure(stem) > 0 ? stem + "ee" : w;
  }
  std::string stem;
  bool removed = false;
  for (std::string_view suffix : {std::string_view("ed"), std::string_view("ing")}) {
    if (ends_with(w, suffix)) {
      stem = drop(w, suffix.size());
      if (contains_vowel(stem)) {
        removed = true;
        break;
      }
    }
  }
  if (!removed) return w;
  if (ends_with(stem, "at")) return stem + "e";
  if (ends_with(stem, "bl")) return stem + "e";
  if (ends_with(stem, "iz")) return stem + "e";
  if (ends_double_consonant(stem)) {
    const char last = stem.back();
    return (last == 'l' || last == 's' || last == 'z') ? stem : drop(stem, 1);
  }
  return (measure(stem) == 1 && ends_cvc(stem)) ? stem + "e" : stem;
}

std::string step1c(const std::string& w) {
  if (!ends_with(w, "y")) return w;
  const std::string stem = drop(w, 1);
  return (stem.size() > 1 && is_consonant(stem, stem.size() - 1)) ? stem + "i" : w;
}

std::string step2(const std::string& w) {
  if (ends_with(w, "alli") && measure(drop(w, 4)) > 0) return step2(drop(w, 4) + "al");
  static const Rule rules[] = {
      {"ational", "ate", Condition::kMeasureAbove0}, {"tional", "tion", Condition::kMeasureAbove0},
      {"enci", "ence", Condition::kMeasureAbove0},   {"anci", "ance", Condition::kMeasureAbove0},
      {"izer", "ize", Condition::kMeasureAbove0},    {"bli", "ble", Condition::kMeasureAbove0},
      {"alli", "al", Condition::kMeasureAbove0},     {"entli", "ent", Condition::kMeasureAbove0},
      {"eli", "e", Condition::kMeasureAbove0},       {"ousli", "ous", Condition::kMeasureAbove0},
      {"ization", "ize", Condition::kMeasureAbove0}, {"ation", "ate", Condition::kMeasureAbove0},
      {"ator", "ate", Condition::kMeasureAbove0},    {"alism", "al", Condition::kMeasureAbove0},
      {"iveness", "ive", Condition::kMeasureAbove0}, {"fulness", "ful", Condition::kMeasureAbove0},
      {"ousness", "ous", Condition::kMeasureAbove0}, {"aliti", "al", Condition::kMeasureAbove0},
      {"iviti", "ive", Condition::kMeasureAbove0},   {"biliti", "ble", Condition::kMeasureAbove0},
      {"fulli", "ful", Condition::kMeasureAbove0},   {"logi", "log", Condition::kLogi}};
  return apply_rules(w, rules);
}

std::string step3(const std::string& w) {
  static const Rule rules[] = {
      {"icate", "ic", Condition::kMeasureAbove0}, {"ative", "", Condition::kMeasureAbove0},
      {"alize", "al", Condition::kMeasureAbove0}, {"iciti", "ic", Condition::kMeasureAbove0},
      {"ical", "ic", Condition::kMeasureAbove0},  {"ful", "", Condition::kMeasureAbove0},
      {"ness", "", Condition::kMeasureAbove0}};
  return apply_rules(w, rules);
}

std::string step4(const std::string& w) {
  static const Rule rules[] = {
      {"al", "", Condition::kMeasureAbove1},    {"ance", "", Condition::kMeasureAbove1},
      {"ence", "", Condition::kMeasureAbove1},  {"er", "", Condition::kMeasureAbove1},
      {"ic", "", Condition::kMeasureAbove1},    {"able", "", Condition::kMeasureAbove1},
      {"ible", "", Condition::kMeasureAbove1},  {"ant", "", Condition::kMeasureAbove1},
      {"ement", "", Condition::kMeasureAbove1}, {"ment", "", Condition::kMeasureAbove1},
      {"ent", "", Condition::kMeasureAbove1},   {"ion", "", Condition::kMeasureAbove1AndEndsST},
      {"ou", "", Condition::kMeasureAbove1},    {"ism", "", Condition::kMeasureAbove1},
      {"ate", "", Condition::kMeasureAbove1},   {"iti", "", Condition::kMeasureAbove1},
      {"ous", "", Condition::kMeasureAbove1},   {"ive", "", Condition::kMeasureAbove1},
      {"ize", "", Condition::kMeasureAbove1}};
  return apply_rules(w, rules);
}

std::string step5a(const std::string& w) {
  if (!ends_with(w, "e")) return w;
  const std::string stem = drop(w, 1);
  const int m = measure(stem);
  if (m > 1 || (m == 1 && !ends_cvc(stem))) return stem;
  return w;
}

std::string step5b(const std::string& w) {
  // ("ll", "l") when the word less one 'l' has m > 1.
  if (ends_with(w, "ll") && measure(drop(w, 1)) > 1) return drop(w, 1);
  return w;
}

// NLTK_EXTENSIONS' irregular forms: word -> stem.
const std::unordered_map<std::string, std::string>& irregular_forms() {
  static const std::unordered_map<std::string, std::string> forms = {
      {"sky", "sky"},        {"skies", "sky"},        {"dying", "die"},
      {"lying", "lie"},      {"tying", "tie"},        {"news", "news"},
      {"innings", "inning"}, {"inning", "inning"},    {"outings", "outing"},
      {"outing", "outing"},  {"cannings", "canning"}, {"canning", "canning"},
      {"howe", "howe"},      {"proceed", "proceed"},  {"exceed", "exceed"},
      {"succeed", "succeed"}};
  return forms;
}

}  // namespace porter
}  // namespace

std::string porter_stem(std::string_view word) {
  std::string w(word);
  for (char& c : w)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  const auto& forms = porter::irregular_forms();
  if (const auto it = forms.find(w); it != forms.end()) return it->second;
  if (w.size() <= 2) return w;
  w = porter::step1a(w);
  w = porter::step1b(w);
  w = porter::step1c(w);
  w = porter::step2(w);
  w = porter::step3(w);
  w = porter::step4(w);
  w = porter::step5a(w);
  w = porter::step5b(w);
  return w;
}

}  // namespace gpt

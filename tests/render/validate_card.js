#!/usr/bin/env node
// Validates an Adaptive Card (JSON on stdin) with Microsoft's own SDK (npm adaptivecards),
// at version 1.4, the newest that Teams Workflows accepts. Prints one JSON object:
//   {"ok": bool, "sdk": "3.0.6", "targetVersion": "1.4",
//    "events": [{"phase", "event", "message"}],   parse events + validateProperties()
//    "unknown": [{"path", "type", "property"}]}   source keys the SDK's schema does not know
// Exit code 0 when ok, 1 when the card has a problem, 2 when the input is not JSON.
//
// Why three checks :
// a bare parse() reports nothing; a SerializationContext at 1.4 collects parse events
// (unknown element/action types, elements and properties newer than 1.4, bad enum values);
// validateProperties() adds card-level checks (version, duplicate ids, ...); and unknown
// properties (a misspelt "colour") are dropped silently, so the source keys of every
// object are compared here with that object's schema.
"use strict";

const fs = require("fs");
const path = require("path");

const ROOT = path.resolve(__dirname, "..", "..");
const AC = require(path.join(ROOT, "node_modules", "adaptivecards", "dist", "adaptivecards.min.js"));
const SDK_VERSION = require(path.join(ROOT, "node_modules", "adaptivecards", "package.json")).version;

// Keys that are valid at the root of a Teams card but are no part of the SDK's schema:
// "msteams" is Teams' documented host extension ({"width": "Full"}, mentions).
const ROOT_HOST_EXTENSIONS = new Set(["msteams"]);

function pointerMap(value, at = "", map = new Map()) {
  if (value && typeof value === "object") {
    map.set(value, at || "/");
    for (const [k, v] of Object.entries(value)) pointerMap(v, `${at}/${k}`, map);
  }
  return map;
}

// The keys an object of this class reads from its source: its schema's property names, plus
// the child collections that its parse() reads by hand (items/body, actions, columns, ...).
function knownKeys(obj) {
  const keys = new Set(["type", "fallback"]);
  const schema = obj.getSchema();
  for (let i = 0; i < schema.getCount(); i++) keys.add(schema.getItemAt(i).name);
  if (typeof obj.getItemsCollectionPropertyName === "function") keys.add(obj.getItemsCollectionPropertyName());
  if (obj instanceof AC.AdaptiveCard || obj instanceof AC.ActionSet || obj instanceof AC.Container) keys.add("actions");
  if (obj instanceof AC.ColumnSet) keys.add("columns");
  if (obj instanceof AC.RichTextBlock) keys.add("inlines");
  if (obj instanceof AC.ShowCardAction) keys.add("card");
  return keys;
}

function typeName(obj) {
  return typeof obj.getJsonTypeName === "function" ? obj.getJsonTypeName() : obj.constructor.name;
}

// Compares the source's keys with obj's schema; recurses into nested serializable objects
// (FactSet facts, backgroundImage, choices, images, ...) that are not parsed as elements.
function checkKeys(obj, source, pointers, unknown, extraKeys = new Set(), label = typeName(obj)) {
  if (!source || typeof source !== "object" || Array.isArray(source)) return;
  const keys = knownKeys(obj);
  for (const key of Object.keys(source)) {
    if (!keys.has(key) && !extraKeys.has(key)) {
      unknown.push({ path: pointers.get(source) || "?", type: label, property: key });
    }
  }
  const schema = obj.getSchema();
  for (let i = 0; i < schema.getCount(); i++) {
    const prop = schema.getItemAt(i);
    const value = source[prop.name];
    if (value === undefined || !prop.objectType) continue;
    const children = prop instanceof AC.SerializableObjectCollectionProperty ? value : [value];
    if (!Array.isArray(children)) continue;
    for (const child of children) {
      if (child && typeof child === "object") checkKeys(new prop.objectType(), child, pointers, unknown, new Set(), `${label}.${prop.name}[]`);
    }
  }
}

function validate(json) {
  AC.SerializableObject.defaultMaxVersion = AC.Versions.v1_4;
  const pointers = pointerMap(json);
  const unknown = [];
  const context = new AC.SerializationContext(AC.Versions.v1_4);
  context.onParseElement = (element, source) => checkKeys(element, source, pointers, unknown);
  context.onParseAction = (action, source) => checkKeys(action, source, pointers, unknown);

  const card = new AC.AdaptiveCard();
  card.parse(json, context);
  checkKeys(card, json, pointers, unknown, ROOT_HOST_EXTENSIONS);

  const events = [];
  const describe = (e) => ({
    phase: AC.ValidationPhase[e.phase] ?? String(e.phase),
    event: AC.ValidationEvent[e.event] ?? String(e.event),
    message: e.message,
  });
  for (let i = 0; i < context.eventCount; i++) events.push(describe(context.getEventAt(i)));
  for (const e of card.validateProperties().validationEvents) events.push(describe(e));

  // Teams needs a declared version; the SDK checks only one that is there.
  const declared = json && json.version;
  if (json && json.type !== "AdaptiveCard") {
    events.push({ phase: "Parse", event: "InvalidPropertyValue", message: `root type is ${JSON.stringify(json.type)}, not "AdaptiveCard"` });
  }
  const parsed = typeof declared === "string" ? AC.Version.parse(declared, new AC.SerializationContext()) : undefined;
  const versionReported = events.some((e) => e.event === "UnsupportedCardVersion");
  if (!versionReported && (!parsed || !parsed.isValid || parsed.compareTo(AC.Versions.v1_4) > 0)) {
    events.push({ phase: "Validation", event: "UnsupportedCardVersion",
      message: declared === undefined ? "the card declares no version" : `version ${JSON.stringify(declared)} is not 1.4 or older` });
  }
  return { ok: events.length === 0 && unknown.length === 0, sdk: SDK_VERSION, targetVersion: "1.4", events, unknown };
}

function main() {
  let json;
  try {
    json = JSON.parse(fs.readFileSync(0, "utf8"));
  } catch (error) {
    process.stdout.write(JSON.stringify({ ok: false, error: `input is not JSON: ${error.message}` }) + "\n");
    process.exit(2);
  }
  const result = validate(json);
  process.stdout.write(JSON.stringify(result) + "\n");
  process.exit(result.ok ? 0 : 1);
}

if (require.main === module) main();
module.exports = { validate };

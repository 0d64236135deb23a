// callstream's live console: plain JavaScript, no build step, no library.
// It reads the console API (/console/api/...) with a bearer token: a Cognito ID token in AWS,
// the embedded stack's token locally. A call's timeline is polled "since my cursor": the API
// moves the cursor only past items with none missing before them, so a burst is read to its end
// and an item written a moment late is still read; events are keyed, so one delivered twice
// (or read again past a held cursor) shows once.
"use strict";

const POLL_CALLS_MS = 1000;
const POLL_EVENTS_MS = 300;
const ROLES = { inbound: "caller", outbound: "agent" };

const REFRESH_BEFORE_MS = 5 * 60 * 1000; // a Cognito ID token is renewed 5 min before it expires

const state = {
  config: null,
  token: sessionStorage.getItem("callstream.token") || "",
  refreshToken: sessionStorage.getItem("callstream.refresh") || "",
  refreshTimer: null,
  view: null, // "calls" | "call"
  timer: null,
  call: null, // the open call's state
  pages: [], // the calls list: tokens of the pages before the one shown ([]: the newest)
  next: null, // the token of the page after it
};
window.__callstream = { freshness: [], rendered: 0 }; // measured by bench/console_freshness.py

const $ = (id) => document.getElementById(id);

function show(id) {
  for (const section of ["signin", "calls", "call"]) $(section).hidden = section !== id;
}

// -- the API ----------------------------------------------------------------------------------

class SignInNeeded extends Error {}

async function api(path, options = {}, renewed = false) {
  const headers = { ...(options.headers || {}), Authorization: `Bearer ${state.token}` };
  const response = await fetch(path, { ...options, headers });
  if (response.status === 401 || response.status === 403) {
    // An ID token past its hour (a laptop asleep through the timer): renewed once, then asked
    if (!renewed && state.refreshToken && (await refresh())) return api(path, options, true);
    throw new SignInNeeded("the API refused the token: sign in again");
  }
  const body = await response.json().catch(() => ({}));
  if (response.status === 404) throw new NotFound(body.message || "not found");
  if (!response.ok) throw new Error(body.message || `${response.status}`);
  return body;
}

// -- sign-in ----------------------------------------------------------------------------------

/** Cognito's InitiateAuth (its JSON 1.1 API, as the AWS SDKs call it): the tokens, or why not. */
async function initiateAuth(flow, parameters) {
  const response = await fetch(state.config.cognito_url, {
    method: "POST",
    headers: {
      "Content-Type": "application/x-amz-json-1.1",
      "X-Amz-Target": "AWSCognitoIdentityProviderService.InitiateAuth",
    },
    body: JSON.stringify({ AuthFlow: flow, ClientId: state.config.client_id, AuthParameters: parameters }),
  });
  const answer = await response.json().catch(() => ({}));
  if (answer.AuthenticationResult) return answer.AuthenticationResult;
  const why = answer.message || answer.ChallengeName || answer.__type || `HTTP ${response.status}`;
  throw new Error(String(why));
}

/** Keep the session: a new ID token is asked for before this one expires. */
function keep(result) {
  setToken(result.IdToken);
  if (result.RefreshToken) {
    state.refreshToken = result.RefreshToken;
    sessionStorage.setItem("callstream.refresh", result.RefreshToken);
  }
  clearTimeout(state.refreshTimer);
  const inMs = Math.max(10_000, Number(result.ExpiresIn || 3600) * 1000 - REFRESH_BEFORE_MS);
  state.refreshTimer = setTimeout(() => refresh().catch(console.warn), inMs);
}

/** A new ID token from the refresh token (false: the session is over, sign in again). */
async function refresh() {
  try {
    keep(await initiateAuth("REFRESH_TOKEN_AUTH", { REFRESH_TOKEN: state.refreshToken }));
    window.__callstream.refreshed = (window.__callstream.refreshed || 0) + 1;
    return true;
  } catch (error) {
    state.refreshToken = "";
    sessionStorage.removeItem("callstream.refresh");
    return false;
  }
}

async function signIn(event) {
  event.preventDefault();
  $("signin-error").textContent = "";
  try {
    if (state.config.auth === "cognito") {
      const username = $("username").value;
      keep(await initiateAuth("USER_PASSWORD_AUTH", { USERNAME: username, PASSWORD: $("password").value }));
    } else {
      const token = $("token").value.trim();
      if (!token) throw new Error("paste the token make up printed");
      setToken(token);
    }
    route();
  } catch (error) {
    $("signin-error").textContent = `Sign-in failed: ${error.message}`;
  }
}

function setToken(token) {
  state.token = token;
  sessionStorage.setItem("callstream.token", token);
}

function askToSignIn(why = "") {
  stopPolling();
  $("signin-error").textContent = why;
  show("signin");
  $("signin-cognito").hidden = state.config.auth !== "cognito";
  $("signin-bearer").hidden = state.config.auth === "cognito";
}

// -- routing ----------------------------------------------------------------------------------

function route() {
  stopPolling();
  if (!state.token) return askToSignIn();
  const match = location.hash.match(/^#\/call\/([A-Za-z0-9_.:-]{1,128})$/);
  if (match) openCall(match[1]);
  else openCalls();
}

function stopPolling() {
  if (state.timer) clearTimeout(state.timer);
  state.timer = null;
}

function every(ms, work) {
  const tick = async () => {
    try {
      await work();
    } catch (error) {
      if (error instanceof SignInNeeded) return askToSignIn(error.message);
      console.warn(error);
    }
    state.timer = setTimeout(tick, ms);
  };
  tick();
}

// -- the calls list ---------------------------------------------------------------------------

function openCalls() {
  state.view = "calls";
  state.call = null;
  show("calls");
  every(POLL_CALLS_MS, refreshCalls);
}

async function refreshCalls() {
  const params = new URLSearchParams();
  if ($("state-filter").value) params.set("state", $("state-filter").value);
  if ($("search").value.trim()) params.set("q", $("search").value.trim());
  if ($("sentiment-filter").value) params.set("sentiment", $("sentiment-filter").value);
  // the operator's days, from their midnight to the next (the API keeps UTC)
  if ($("since").value) params.set("since", new Date(`${$("since").value}T00:00:00`).toISOString());
  if ($("until").value) {
    params.set("until", new Date(`${$("until").value}T23:59:59.999`).toISOString());
  }
  const pages = state.pages; // the tokens of the pages before this one (newest first)
  if (pages.length) params.set("before", pages[pages.length - 1]);
  const { calls, next } = await api(`/console/api/calls?${params}`);
  if (state.view !== "calls" || pages !== state.pages) return;
  state.next = next;
  $("older").disabled = !next;
  $("newer").disabled = pages.length === 0;
  // Rows are kept and their cells changed in place: a poll never wipes a selection, and the
  // rows move only when the order changed (a new call on top)
  const body = $("call-table").tBodies[0];
  const kept = new Map([...body.rows].map((row) => [row.dataset.call, row]));
  const rows = calls.map((call) => {
    let row = kept.get(call.call_uuid);
    if (!row) {
      row = document.createElement("tr");
      row.dataset.call = call.call_uuid;
      row.addEventListener("click", () => {
        if (!String(window.getSelection())) location.hash = `#/call/${row.dataset.call}`;
      });
    }
    const cells = [
      startedAt(call.first_seen),
      call.call_uuid,
      call.from_number || "",
      call.to_number || "",
      call.state || "",
      call.codec ? `${call.codec} ${call.sample_rate || ""}` : "",
      call.agent || "",
      duration(call),
      call.caller_sentiment || "",
      call.caller_overall || "",
    ];
    while (row.cells.length < cells.length) row.insertCell();
    cells.forEach((text, i) => {
      if (row.cells[i].textContent !== text) row.cells[i].textContent = text;
    });
    row.dataset.state = call.state || "";
    return row;
  });
  const moved = rows.length !== body.rows.length || rows.some((row, i) => body.rows[i] !== row);
  if (moved) body.replaceChildren(...rows);
  const filtered = [...params.keys()].some((k) => k !== "before");
  $("no-calls").hidden = calls.length > 0;
  $("no-calls").textContent = filtered ? "No calls match." : "No calls in the last week yet.";
  // a search reads the calls' cards, 2,000 a request: a short page may have more behind it
  $("searched").hidden = !(filtered && next && calls.length < 100);
  $("searched").textContent = "Searched part of the calls: Older calls searches on.";
}

/** When a call began, in the operator's own time zone (with the day when it is not today). */
function startedAt(iso) {
  const at = new Date(iso);
  if (!Number.isFinite(at.getTime())) return "";
  const time = at.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  return at.toDateString() === new Date().toDateString()
    ? time
    : `${at.toLocaleDateString([], { month: "short", day: "numeric" })} ${time}`;
}

function duration(call) {
  const start = Date.parse(call.first_seen);
  const end = call.state === "ended" ? Date.parse(call.updated_at) : Date.now();
  if (call.duration_s) return clock(call.duration_s * 1000);
  return Number.isFinite(start) ? clock(Math.max(0, end - start)) : "";
}

function clock(ms) {
  const s = Math.floor(ms / 1000);
  return `${String(Math.floor(s / 60)).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`;
}

// -- one call, live ---------------------------------------------------------------------------

function openCall(callUuid) {
  state.view = "call";
  state.call = {
    id: callUuid,
    cursor: "",
    seen: new Set(),
    lines: new Map(), // stream#utterance → its transcript line ({li, rank, endMs})
    live: new Map(), // stream#result_id → its transcript line (live transcription's lines)
    points: [], // {role, at, score}
    stream: null,
    bidirectional: null,
    recordingFor: null,
    checkpoints: 0,
    loaded: false, // the first read brings the call's past: not counted as fresh
    card: {},
    state: "",
  };
  $("call-id").textContent = callUuid;
  $("call-state").textContent = "";
  $("call-meta").textContent = "";
  $("call-missing").hidden = true;
  $("talk-stream").textContent = "";
  $("overall").textContent = "";
  $("timeline").classList.remove("seekable");
  delete $("player").dataset.stream;
  $("timeline").replaceChildren();
  $("alerts").replaceChildren();
  $("after").hidden = true;
  $("summary").replaceChildren();
  delete $("summary").dataset.call;
  $("player").removeAttribute("src");
  $("talk-result").textContent = "";
  drawChart();
  controls(state.call);
  show("call");
  every(POLL_EVENTS_MS, refreshTimeline);
}

class NotFound extends Error {}

async function refreshTimeline() {
  const call = state.call;
  for (let page = 0; page < 20; page += 1) {
    // a burst is read on at once, a few pages a tick, so the page stays responsive
    const before = call.cursor;
    let answer;
    try {
      answer = await api(
        `/console/api/calls/${encodeURIComponent(call.id)}/events?after=${encodeURIComponent(before)}`
      );
    } catch (error) {
      if (!(error instanceof NotFound)) throw error;
      // its first event may be on its way: said, and asked again a moment later
      $("call-missing").textContent = `No call ${call.id} in the console (yet): ${error.message}.`;
      $("call-missing").hidden = false;
      await new Promise((resolve) => setTimeout(resolve, 2000));
      return;
    }
    if (state.call !== call) return;
    $("call-missing").hidden = true;
    if (answer.card) Object.assign(call.card, answer.card);
    for (const event of answer.events) {
      const key = dedupKey(event);
      if (call.seen.has(key)) continue;
      call.seen.add(key);
      render(call, event);
      // freshness: from the bus to this page, for what arrived while the page was open
      const published = event.detail.published_at;
      if (published && call.loaded) window.__callstream.freshness.push(Date.now() - published);
      window.__callstream.rendered += 1;
    }
    call.cursor = answer.cursor; // it only moves on
    if (!answer.more || answer.cursor === before) break;
  }
  call.loaded = true;
  meta(call);
}

/** When the call began, who calls whom, and how long it has lasted (live: ticking). */
function meta(call) {
  const c = call.card;
  const parts = [];
  if (c.first_seen) parts.push(`started ${startedAt(c.first_seen)}`);
  if (c.from_number || c.to_number) parts.push(`from ${c.from_number || "?"} to ${c.to_number || "?"}`);
  if (c.first_seen) {
    const ended = call.state === "ended";
    const ms = ended && c.duration_s ? c.duration_s * 1000 : (ended ? Date.parse(c.updated_at) : Date.now()) - Date.parse(c.first_seen);
    if (Number.isFinite(ms)) parts.push(`${clock(Math.max(0, ms))}${ended ? "" : " so far"}`);
  }
  $("call-meta").textContent = parts.join(" · ");
}

function dedupKey(event) {
  const d = event.detail;
  if (event.type === "Session Event") return `session:${d.stream_id}:${d.seq}`;
  if (event.type === "Utterance Transcribed")
    return `${event.type}:${d.stream_id}:${d.utterance}:${d.kind || "final"}`;
  if (event.type === "Sentiment Scored") return `${event.type}:${d.stream_id}:${d.utterance}`;
  if (event.type === "Recording Ready" || event.type === "Call Completed")
    return `${event.type}:${d.stream_id}:${d.generation}`;
  return event.id;
}

function item(classes, at, who, text) {
  const li = document.createElement("li");
  li.className = classes;
  const time = document.createElement("span");
  time.className = "at";
  time.textContent = at === null ? "" : clock(at);
  const name = document.createElement("span");
  name.className = "who";
  name.textContent = who;
  const words = document.createElement("span");
  words.className = "text";
  words.textContent = text;
  li.replaceChildren(time, name, words);
  place(li, at);
  return li;
}

/** In call time order: an item with no time of its own goes after everything shown so far. */
function place(li, at) {
  const timeline = $("timeline");
  const last = timeline.lastElementChild;
  const ms = at === null || at === undefined ? Math.max(Number(last?.dataset.at) || 0, 0) : Number(at) || 0;
  li.dataset.at = ms;
  let next = null;
  for (let other = last; other && Number(other.dataset.at) > ms; other = other.previousElementSibling)
    next = other;
  timeline.insertBefore(li, next);
}

function render(call, event) {
  const d = event.detail;
  if (d.stream_id && event.type !== "Call Ended") call.stream = d.stream_id;
  switch (event.type) {
    case "Utterance Transcribed":
      transcriptLine(call, d, d.kind === "provisional" ? "provisional" : "final");
      break;
    case "Transcript Partial":
      transcriptLine(call, d, d.done ? "final" : "partial");
      break;
    case "Sentiment Scored": {
      const li = call.lines.get(`${d.stream_id}#${d.utterance}`)?.li;
      const role = d.role || ROLES[d.track] || d.track;
      if (li) {
        li.classList.add(`sentiment-${d.sentiment}`);
        li.dataset.sentiment = d.sentiment;
        const label = li.querySelector(".label") || li.appendChild(document.createElement("span"));
        label.className = "label";
        label.textContent = d.sentiment.toLowerCase();
      }
      const scores = d.scores || {};
      const at = li ? Number(li.dataset.startMs) : lastAt(call);
      call.points.push({ role, at, score: (scores.Positive || 0) - (scores.Negative || 0) });
      drawChart();
      overall(call);
      break;
    }
    case "Sentiment Alert": {
      const text = `The caller turned negative: “${d.text || ""}”`;
      const banner = document.createElement("div");
      banner.className = "alert";
      banner.textContent = text;
      $("alerts").append(banner);
      item("alert", lastAt(call), "alert", text);
      break;
    }
    case "Session Event":
      sessionEvent(call, d);
      break;
    case "Call Answered":
      Object.assign(call.card, { from_number: d.from, to_number: d.to });
      if (call.bidirectional === null) call.bidirectional = d.bidirectional;
      item("event", null, "call", `answered: from ${d.from || "?"} to ${d.to || "?"}`);
      break;
    case "Stream Requested":
      call.bidirectional = d.bidirectional;
      item("event", null, "stream", `requested: ${d.content_type}, ${d.audio_track}, agent ${d.agent}`);
      break;
    case "Recording Ready":
    case "Call Completed":
      item("event", null, "call", event.type === "Recording Ready" ? "recording ready" : "completed");
      if (d.digest && typeof d.digest.summary === "string") item("event", null, "summary", digestText(d.digest));
      loadAfter(call, d.stream_id);
      break;
    case "Call Ended":
      setState("ended");
      Object.assign(call.card, { from_number: d.from || call.card.from_number, to_number: d.to || call.card.to_number });
      if (d.duration_s) call.card.duration_s = d.duration_s;
      item("event", null, "call", `hung up (${d.hangup_cause || "no cause given"})`);
      break;
    case "Played Stream":
    case "Cleared Audio":
      break; // the stream's own session events say it, at their place in the call
    case "Stream Started":
    case "Stream Stopped":
    case "Stream Failed":
      item("event", null, "vobiz", event.type.toLowerCase());
      break;
    default:
      break;
  }
  $("talk-stream").textContent = call.stream ? `stream ${call.stream}` : "";
  if (call.bidirectional === null && call.card.bidirectional !== undefined)
    call.bidirectional = call.card.bidirectional;
  controls(call);
}

/** Talk-back works on a live, bidirectional stream only: otherwise its buttons say so. */
function controls(call) {
  const why = !call.stream
    ? "no stream yet"
    : call.state !== "live"
      ? `the stream is ${call.state || "not live yet"}`
      : call.bidirectional !== true
        ? "listen-only stream: Vobiz takes no audio on it"
        : "";
  for (const id of ["play", "checkpoint", "clear", "end", "wav"]) {
    $(id).disabled = Boolean(why);
    $(id).title = why;
  }
  $("talkback").dataset.why = why;
}

// A transcript line grows with its partials and settles at its provisional final, then its
// final. EventBridge does not keep order, so a line only moves forward: partial < provisional
// < final, and of two partials the one that covers more audio. A final also settles the
// other partial lines it names (the recogniser cut the utterance elsewhere than our VAD).
const RANK = { partial: 0, provisional: 1, final: 2 };

function transcriptLine(call, d, kind) {
  const byUtterance = d.utterance ? `${d.stream_id}#${d.utterance}` : null;
  const byResult = d.result_id ? `${d.stream_id}#${d.result_id}` : null;
  const rank = RANK[kind];
  const endMs = Number(d.end_ms) || 0;
  let line = (byUtterance && call.lines.get(byUtterance)) || (byResult && call.live.get(byResult));
  if (line && (line.rank > rank || (line.rank === rank && rank === 0 && line.endMs >= endMs)))
    return; // older than what the page shows
  for (const other of d.settles || []) settle(call, `${d.stream_id}#${other}`, line);
  if (kind === "final" && !d.utterance && !d.text) {
    settle(call, byResult, null); // a line no utterance kept: withdrawn
    return;
  }
  if (!line?.li) {
    const role = d.role || ROLES[d.track] || d.track;
    line = { li: item(`utterance ${role}`, d.start_ms, role, "") };
  }
  Object.assign(line, { rank, endMs });
  const li = line.li;
  li.classList.remove("partial", "provisional", "final");
  li.classList.add(kind);
  li.dataset.kind = kind;
  li.dataset.startMs = d.start_ms;
  li.querySelector(".at").textContent = clock(Number(d.start_ms) || 0);
  if (Number(li.dataset.at) !== (Number(d.start_ms) || 0)) place(li, d.start_ms);
  li.querySelector(".text").textContent = d.text || "…";
  if (byResult) call.live.set(byResult, line);
  if (byUtterance) {
    li.dataset.utterance = d.utterance;
    call.lines.set(byUtterance, line);
  }
}

// The line at `key` is replaced by `by` (or withdrawn): its item goes, later news of it is moot.
function settle(call, key, by) {
  const line = call.live.get(key);
  if (line && line === by) return;
  if (line?.li && line.li !== by?.li) line.li.remove();
  call.live.set(key, { li: null, rank: RANK.final, endMs: Infinity });
}

function sessionEvent(call, d) {
  const data = d.data || {};
  const names = {
    start: () => {
      setState("live");
      const again = (data.generation || 1) > 1;
      return again
        ? `reconnected (connection ${data.generation}, ${data.outage_ms} ms down)`
        : `started: ${data.codec} ${data.sample_rate} Hz, ${(data.tracks || []).join("+")}`;
    },
    dtmf: () => `DTMF ${data.digit}`,
    limited: () => `${data.what === "dtmf" ? "DTMF" : "checkpoints"} past their rate: ${data.dropped} dropped`,
    gap: () =>
      data.reason === "reconnect"
        ? `line down: ${data.frames} frames`
        : `gap: ${data.frames} frames lost on ${data.track}`,
    played_stream: () => `played up to ${data.name}`,
    cleared_audio: () => "cleared (barge-in)",
    agent: () => agentAction(data),
    stop: () => {
      setState("ended");
      return "ended (stop)";
    },
    close: () => {
      setState("ended");
      return `ended (${data.reason || "close"})`;
    },
  };
  const describe = names[d.name];
  const who = { agent: "talk-back", played_stream: "vobiz", cleared_audio: "vobiz" }[d.name] || d.name;
  // playback (plays, checkpoints, clears and Vobiz's answers) is muted beside what was said
  const plumbing = PLUMBING.has(d.name === "agent" ? data.action : d.name) ? " plumbing" : "";
  if (describe) item(`event session-${d.name}${plumbing}`, d.at_ms, who, describe());
}

const PLUMBING = new Set(["play", "checkpoint", "clear", "played_stream", "cleared_audio"]);

/** The call's digest in one line: summary, intent, outcome, action items (who wrote it). */
function digestText(digest) {
  const items = Array.isArray(digest.action_items) ? digest.action_items.filter((i) => typeof i === "string") : [];
  const parts = [digest.summary];
  if (digest.intent) parts.push(`Intent: ${digest.intent}`);
  if (digest.outcome) parts.push(`Outcome: ${digest.outcome}`);
  if (items.length) parts.push(`To do: ${items.join("; ")}`);
  return `${parts.join(" · ")} (${digest.source || "?"})`;
}

/** A talk-back action as the operator reads it; the voice agent's turns say what was heard. */
function agentAction(data) {
  switch (data.action) {
    case "turn":
      if (!data.caller) return `greeted: “${data.reply || ""}”`;
      return data.reply
        ? `replied in ${data.latency_ms ?? "?"} ms to “${data.caller}”: “${data.reply}”`
        : `reply to “${data.caller}” cut before a word was heard`;
    case "barge_in":
      return "the caller talked over the agent: its audio cleared";
    case "hand_over":
      return "handed over to a colleague";
    case "model_failed":
      return `the model failed (${data.error || "?"}): the caller heard an apology`;
    default:
      return `${data.action}${data.name ? ` ${data.name}` : ""}${data.ms ? ` (${data.ms} ms)` : ""}`;
  }
}

function setState(text) {
  if (state.call) state.call.state = text;
  $("call-state").textContent = text;
  $("call-state").className = `badge ${text}`;
  if (state.call) controls(state.call);
}

function lastAt(call) {
  const lines = [...call.lines.values()];
  return lines.length ? Number(lines[lines.length - 1].li?.dataset.startMs) || 0 : 0;
}

// -- the sentiment chart (inline SVG) ----------------------------------------------------------

/** The caller's sentiment over the whole call, and where it is heading (its last lines
 * against its first: LCA's "overall sentiment" and "trend"). */
function overall(call) {
  const caller = call.points.filter((p) => p.role === "caller").sort((a, b) => a.at - b.at);
  if (!caller.length) return;
  const mean = (ps) => ps.reduce((t, p) => t + p.score, 0) / ps.length;
  const whole = mean(caller);
  const label = whole > 0.2 ? "positive" : whole < -0.2 ? "negative" : "neutral";
  const n = Math.max(1, Math.floor(caller.length / 3));
  const change = caller.length > 1 ? mean(caller.slice(-n)) - mean(caller.slice(0, n)) : 0;
  const trend = change > 0.2 ? "improving" : change < -0.2 ? "worsening" : "steady";
  $("overall").textContent = `caller overall: ${label}, ${trend}`;
  $("overall").dataset.overall = label;
  $("overall").dataset.trend = trend;
}

function drawChart() {
  const svg = $("chart");
  const points = state.call ? state.call.points : [];
  const end = Math.max(1000, ...points.map((p) => p.at || 0));
  const x = (at) => 40 + (545 * (at || 0)) / end;
  const y = (score) => 75 - 60 * Math.max(-1, Math.min(1, score));
  // axes: sentiment (positive over negative) up the left, time in the call along the bottom
  const parts = [
    '<line x1="40" y1="15" x2="40" y2="135" stroke="#aeb6bf"/>',
    '<line x1="40" y1="75" x2="585" y2="75" stroke="#d5d8dc"/>',
    '<line x1="40" y1="135" x2="585" y2="135" stroke="#aeb6bf"/>',
    '<text class="y-axis" x="4" y="19">+1 pos</text>',
    '<text class="y-axis" x="4" y="79">0</text>',
    '<text class="y-axis" x="4" y="135">−1 neg</text>',
  ];
  for (const f of [0, 0.25, 0.5, 0.75, 1])
    parts.push(`<text class="x-axis" x="${(x(end * f) - (f === 1 ? 28 : f ? 14 : 0)).toFixed(1)}" y="152">${clock(end * f)}</text>`);
  for (const role of ["caller", "agent"]) {
    const mine = points.filter((p) => p.role === role).sort((a, b) => a.at - b.at);
    if (!mine.length) continue;
    const colour = role === "caller" ? "#c0392b" : "#2471a3";
    const path = mine.map((p) => `${x(p.at).toFixed(1)},${y(p.score).toFixed(1)}`).join(" ");
    parts.push(`<polyline class="${role}" fill="none" stroke="${colour}" stroke-width="2" points="${path}"/>`);
    for (const p of mine)
      parts.push(`<circle class="${role}" cx="${x(p.at).toFixed(1)}" cy="${y(p.score).toFixed(1)}" r="3" fill="${colour}"/>`);
  }
  svg.innerHTML = parts.join("");
}

// -- after the call ----------------------------------------------------------------------------

async function loadAfter(call, streamId) {
  if (!streamId) return;
  const found = await api(
    `/console/api/calls/${encodeURIComponent(call.id)}/streams/${encodeURIComponent(streamId)}/recording`
  );
  if (state.call !== call) return;
  call.recordingFor = streamId;
  $("after").hidden = false;
  if (found.url && $("player").dataset.stream !== streamId) {
    $("player").src = found.url;
    $("player").dataset.stream = streamId;
  }
  if (found.summary) summary(found.summary);
  $("timeline").classList.add("seekable");
}

/** The summary, as an operator reads it (not its JSON, nor its S3 keys). */
function summary(s) {
  const talk = s.talk_time_s || {};
  const lines = s.utterances || [];
  const by = (label) => lines.filter((u) => u.role === "caller" && u.sentiment === label).length;
  const rows = [
    ["Duration", clock((s.duration_s || 0) * 1000)],
    ["Talk time", `caller ${Math.round(talk.inbound || 0)} s, agent ${Math.round(talk.outbound || 0)} s`],
    ["Lines", `${lines.length}`],
    ["Caller's lines", `${by("POSITIVE")} positive, ${by("NEUTRAL")} neutral, ${by("NEGATIVE")} negative, ${by("MIXED")} mixed`],
    ["Audio", `${s.codec || "?"} ${s.sample_rate || ""} Hz${(s.gaps || []).length ? `, ${s.gaps.length} gap(s)` : ", no gaps"}`],
  ];
  if (s.generation > 1) rows.push(["Connections", `${s.generation} (Vobiz reconnected)`]);
  const dl = $("summary");
  dl.dataset.call = s.call_uuid || "";
  dl.replaceChildren(
    ...rows.flatMap(([name, value]) => {
      const dt = document.createElement("dt");
      dt.textContent = name;
      const dd = document.createElement("dd");
      dd.textContent = value;
      return [dt, dd];
    })
  );
}

/** A click on a transcript line plays the recording from that moment. */
function seek(event) {
  const li = event.target.closest("li.utterance");
  const player = $("player");
  if (!li || !player.src || !$("timeline").classList.contains("seekable")) return;
  player.currentTime = (Number(li.dataset.startMs) || 0) / 1000;
  player.play().catch(() => {}); // a browser may want a gesture first: the position is set
}

async function downloadTranscript() {
  const call = state.call;
  const stream = call.recordingFor || call.stream;
  const response = await fetch(
    `/console/api/calls/${encodeURIComponent(call.id)}/streams/${encodeURIComponent(stream)}/transcript`,
    { headers: { Authorization: `Bearer ${state.token}` } }
  );
  const link = document.createElement("a");
  link.href = URL.createObjectURL(await response.blob());
  link.download = `transcript-${call.id}.txt`;
  link.click();
}

// -- talk-back ---------------------------------------------------------------------------------

async function command(action, body) {
  const call = state.call;
  if (!call || !call.stream) throw new Error("no stream yet");
  return api(`/console/api/streams/${encodeURIComponent(call.stream)}/${action}`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
}

/** The picked WAV as 16 kHz mono PCM16 LE pieces of at most PIECE_S, base64 (the play
 * command's format). A play is answered at once with an id; a long WAV goes as a few plays
 * (each body stays far under Lambda's 6 MB request limit: 30 s is 1.3 MB of base64). */
const PIECE_S = 30;
async function wavAsPcm16(file) {
  const rate = 16000;
  const decoded = await new OfflineAudioContext(1, 1, rate).decodeAudioData(await file.arrayBuffer());
  const mono = new Float32Array(decoded.length);
  for (let c = 0; c < decoded.numberOfChannels; c += 1) {
    const channel = decoded.getChannelData(c);
    for (let i = 0; i < mono.length; i += 1) mono[i] += channel[i] / decoded.numberOfChannels;
  }
  const pcm = new DataView(new ArrayBuffer(mono.length * 2));
  mono.forEach((v, i) => pcm.setInt16(i * 2, Math.round(Math.max(-1, Math.min(1, v)) * 32767), true));
  const bytes = new Uint8Array(pcm.buffer);
  const pieces = [];
  const step = PIECE_S * rate * 2;
  for (let start = 0; start < bytes.length; start += step) {
    let binary = "";
    const piece = bytes.subarray(start, Math.min(bytes.length, start + step));
    for (let i = 0; i < piece.length; i += 0x8000)
      binary += String.fromCharCode(...piece.subarray(i, i + 0x8000));
    pieces.push({ audio_b64: btoa(binary), sample_rate: rate });
  }
  return pieces;
}

function talk(button, work) {
  $(button).addEventListener("click", async () => {
    $("talk-result").textContent = `${button}…`;
    try {
      $("talk-result").textContent = await work();
    } catch (error) {
      if (error instanceof SignInNeeded) return askToSignIn(error.message);
      $("talk-result").textContent = `${button} refused: ${error.message}`;
    }
  });
}

/** Where a play is, through the API (queued, playing, played, cleared, sent, ended). */
async function playState(stream, playId) {
  const path = `/console/api/streams/${encodeURIComponent(stream)}/plays/${encodeURIComponent(playId)}`;
  return api(path);
}

const FINISHED = new Set(["played", "cleared", "sent", "ended"]);
talk("play", async () => {
  const file = $("wav").files[0];
  if (!file) throw new Error("pick a WAV first");
  const stream = state.call.stream;
  const mine = { stream, ids: [], cleared: false };
  state.playing = mine; // Clear marks it: no piece is sent after a clear
  for (const piece of await wavAsPcm16(file)) {
    if (mine.cleared || state.playing !== mine) break;
    mine.ids.push((await command("play", piece)).play_id);
  }
  // Followed by id until each piece is heard (Vobiz confirms it) or cut
  let plays = [];
  for (;;) {
    plays = await Promise.all(mine.ids.map((id) => playState(stream, id)));
    const sent = plays.reduce((total, p) => total + p.sent_ms, 0);
    const planned = plays.reduce((total, p) => total + p.ms, 0);
    if (plays.every((p) => FINISHED.has(p.state))) break;
    $("talk-result").textContent = `playing… ${Math.round(sent)} of ${Math.round(planned)} ms sent`;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  const sent = Math.round(plays.reduce((total, p) => total + p.sent_ms, 0));
  const last = plays.find((p) => p.state !== "played") || plays[plays.length - 1];
  if (!last || last.state === "played") return `played ${sent} ms`;
  if (last.state === "cleared" || mine.cleared) return `cleared after ${sent} ms`;
  if (last.state === "ended") return `the stream ended after ${sent} ms`;
  return `sent ${sent} ms (Vobiz did not confirm it was heard)`;
});
talk("checkpoint", async () => {
  state.call.checkpoints += 1;
  const name = `console-${state.call.checkpoints}`;
  $("talk-result").textContent = `checkpoint ${name}: waiting…`;
  const answer = await command("checkpoint", { name });
  return `checkpoint ${answer.name}: ${answer.result}`;
});
talk("clear", async () => {
  if (state.playing) state.playing.cleared = true; // the page's own remaining pieces stop too
  await command("clear", {});
  return "cleared";
});
talk("end", async () => {
  await command("end", {});
  setState("ending"); // at once: the stream's stop event follows
  return "stream ended";
});

// -- start ---------------------------------------------------------------------------------------

async function start() {
  state.config = await fetch("/console/config").then((r) => r.json());
  const fragment = new URLSearchParams(location.hash.replace(/^#/, ""));
  if (fragment.get("token")) {
    setToken(fragment.get("token"));
    history.replaceState(null, "", `${location.pathname}#/calls`);
  }
  $("who").textContent = state.config.auth === "cognito" ? "signed in with Cognito" : "local token";
  $("signin-form").addEventListener("submit", signIn);
  const firstPage = () => {
    state.pages = []; // a new filter starts from the newest calls
    refreshCalls().catch(console.warn);
  };
  for (const id of ["state-filter", "sentiment-filter", "since", "until"]) {
    $(id).addEventListener("change", firstPage);
  }
  let typing = 0; // a search is asked 300 ms after the last key, not on every key
  $("search").addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(firstPage, 300);
  });
  $("older").addEventListener("click", () => {
    if (!state.next) return;
    state.pages = [...state.pages, state.next];
    refreshCalls().catch(console.warn);
  });
  $("newer").addEventListener("click", () => {
    state.pages = state.pages.slice(0, -1);
    refreshCalls().catch(console.warn);
  });
  $("download").addEventListener("click", () => downloadTranscript().catch(console.warn));
  $("timeline").addEventListener("click", seek);
  window.addEventListener("hashchange", route);
  route();
}

start();

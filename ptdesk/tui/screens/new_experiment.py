"""`n`: the new-experiment form. Good defaults, Enter launches with visible steps, the result
shows the URL or ssh command (`c` copies it). A missing image can be built from here, with `b`
only: a build takes minutes and gigabytes, and Enter is the key a person presses to launch.

After an error the cursor goes to the field at fault (the error's `field`), its text kept and not
selected, and the error speaks the form's words (the core's hints name CLI options).

With several workstations the form asks where, "auto" first: the workstation with the most free
GPU capacity for the GPUs asked for (as `ptdesk new --on auto`), said as the first step."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Grid, Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, Log, Select, Static

from ptdesk.core.access.ssh_include import SshConfigState
from ptdesk.core.base.models import Experiment, Launched
from ptdesk.core.workstation import Workstation
from ptdesk.errors import ImageMissing, InvalidInput
from ptdesk.tui.errors import describe
from ptdesk.tui.form_fields import FIELDS, LABELS, field_at_fault, form_words
from ptdesk.tui.jobs import JobDone, run_job

if TYPE_CHECKING:
    from ptdesk.core.fleet import Choice

AUTO = "auto"

@dataclass(frozen=True)
class FormValues:
    kind: str
    name: str
    owner: str
    gpus: str
    image: str
    workspace: str  # empty: workspace_root/NAME
    memory: str
    cpus: str
    shm_size: str
    queue: bool = False  # "wait for GPUs": file it in the GPU queue when none is free


@dataclass
class Step(Message):
    """One launch step begins (from the launch's thread)."""

    text: str


@dataclass
class BuildLine(Message):
    """One line of the image build's output (from the build's thread)."""

    text: str


class NewExperiment(ModalScreen[Experiment | None]):
    BINDINGS = [("escape", "close", "Close"), ("c", "copy", "Copy"), ("b", "build", "Build image"),
                ("a", "add_include", "Add to ~/.ssh/config")]

    def __init__(self, ws: Workstation, kind: str = "jupyter", *,
                 workstations: Mapping[str, Workstation] | None = None,
                 choose: Callable[[str], Choice] | None = None) -> None:
        """`ws`: the default workstation; `workstations` and `choose` (Fleet.choose): where else it
        can launch, and how "auto" picks."""
        super().__init__(classes="modal")
        self.ws = ws  # where it launches: the default, until a launch has chosen
        self.workstations = dict(workstations or {ws.name: ws})
        self.choose = choose
        self.kind = kind
        self.result: Experiment | None = None
        self._warnings: tuple[str, ...] = ()  # the launch's, shown with its result
        self._gpu_choice: str | None = None  # auto's choice and why, as the CLI says it
        self.busy = False
        self.missing_image: str | None = None
        self._typed_name = False
        self._steps: list[str] = []
        self.include_offer: SshConfigState | None = None  # asked once, after the first SSH launch

    def compose(self) -> ComposeResult:
        config = self.ws.config
        cpus = min(config.limits.cpus, float(os.cpu_count() or 1))
        with VerticalScroll(classes="dialog wide", id="new-form"):
            yield Static("New experiment", classes="dialog-title")
            with Grid(id="fields"):
                yield Label("Kind")
                kinds = [(title, name) for name, title in self.ws.kind_titles().items()]  # the registry's
                yield Select(kinds, value=self.kind, allow_blank=False, id="kind", compact=True)
                if len(self.workstations) > 1:
                    yield Label("Workstation")
                    where = [(name, name) for name in self.workstations]
                    if self.choose is not None:
                        where.insert(0, ("auto: most free GPU", AUTO))
                    yield Select(where, value=where[0][1], allow_blank=False, id="where", compact=True)
                values = {"owner": self.ws.default_owner(), "gpus": config.gpus, "image": self.ws.image_for(self.kind),
                          "memory": config.limits.memory, "cpus": f"{cpus:g}", "shm_size": config.limits.shm_size}
                placeholders = {"name": "finding a free name…", "gpus": "none, all, auto or 0,2",
                                "workspace": "empty: a folder named after the experiment"}
                for name in FIELDS:
                    yield Label(LABELS[name])
                    yield Input(values.get(name, ""), placeholder=placeholders.get(name, ""), id=name, compact=True,
                                select_on_focus=False)  # a key pressed after an error must not wipe the text
                yield Label("")
                yield Checkbox("Wait for GPUs (queue it when none is free)", id="queue", compact=True)
            with Horizontal(classes="buttons docked", id="form-buttons"):
                yield Button("Launch (enter)", variant="primary", id="launch", compact=True)
                yield Button("Cancel (esc)", id="cancel", compact=True)
            yield Static(id="steps")
            with Vertical(id="build-offer"):
                yield Static(id="build-text")
                with Horizontal(classes="buttons"):
                    yield Label("FROM")
                    yield Input(config.base_image, id="base", compact=True)
                    # Not focusable: Enter or space on it must not start a build by reflex.
                    build = Button("Build it (b)", variant="warning", id="build", compact=True)
                    build.can_focus = False
                    yield build
                yield Log(max_lines=500, id="build-log")
            with Vertical(id="result"):
                yield Static(id="result-text")
            # Docked: on a small terminal the text scrolls, these stay in view.
            with Horizontal(classes="buttons docked", id="result-buttons"):
                yield Button("Copy (c)", variant="success", id="copy", compact=True)
                yield Button("Close (esc)", id="close", compact=True)
                yield Button("Add to ~/.ssh/config (a)", id="include", compact=True)

    def on_mount(self) -> None:
        for part in ("#build-offer", "#result", "#result-buttons", "#build-log", "#include"):
            self.query_one(part).display = False
        self.query_one("#name", Input).focus()
        self._suggest(self.kind, self.query_one("#owner", Input).value)

    @on(JobDone)
    def _job_done(self, message: JobDone) -> None:
        message.settle(self.app)

    # --- defaults ------------------------------------------------------------------------------
    def _suggest(self, kind: str, owner: str) -> None:
        run_job(self, lambda: self.ws.suggest_name(owner, kind), title="Suggesting a name", group="suggest",
                on_done=lambda name: self._suggested(kind, name),
                on_error=lambda _error: self._suggested(kind, None))  # no suggestion: the user types one

    def _suggested(self, kind: str, name: str | None) -> None:
        field = self.query_one("#name", Input)
        if kind != self.kind or self._typed_name:
            return
        if name:
            with field.prevent(Input.Changed):
                field.value = name
            # Cleared later, the field says what an empty name gets (not "finding…" forever).
            field.placeholder = "empty: a free name is picked at launch"
        else:
            field.placeholder = "type a name (the engine did not answer)"

    @on(Input.Changed, "#name")
    def _name_typed(self) -> None:
        self._typed_name = True

    @on(Select.Changed, "#kind")
    def _kind_changed(self, event: Select.Changed) -> None:
        if event.value == self.kind or event.value is Select.BLANK:
            return
        self.kind = str(event.value)
        self.query_one("#image", Input).value = self.ws.image_for(self.kind)
        if not self._typed_name:
            self._suggest(self.kind, self.query_one("#owner", Input).value)

    def values(self) -> FormValues:
        get = {name: self.query_one(f"#{name}", Input).value.strip() for name in FIELDS}
        return FormValues(kind=self.kind, **get, queue=self.query_one("#queue", Checkbox).value)

    def where(self) -> str:
        """The workstation chosen in the form (auto, or a name); the default one's with only one."""
        chosen = self.query(Select).filter("#where")
        return str(chosen.first().value) if chosen else self.ws.name

    # --- launching -----------------------------------------------------------------------------
    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        # Enter never builds (b does); with another image typed it launches that one.
        if event.input.id != "base" and not (self.missing_image and self._buildable()):
            self.action_launch()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        actions = {"launch": self.action_launch, "cancel": self.action_close, "close": self.action_close,
                   "copy": self.action_copy, "build": self.action_build, "include": self.action_add_include}
        actions[event.button.id or "close"]()

    def action_launch(self, where: str | None = None) -> None:
        """Launch on `where` (a workstation's name), else where the form says."""
        if self.busy or self.result is not None:
            return
        self.busy = True
        self.missing_image = None
        self.query_one("#build-offer").display = False
        self._set_inputs(disabled=True)
        self._steps = []
        self._show_steps()
        values, where = self.values(), where or self.where()
        # An error is shown in the form (launch already rolled back), not as a notification.
        run_job(self, lambda: self._launch(values, where), title="Launching", group="launch",
                on_done=self._launched, on_error=self._launch_failed)

    def _launch(self, v: FormValues, where: str) -> tuple[Launched, SshConfigState | None]:
        """In the job's thread: check the fields, choose the workstation, launch, report each step
        as it begins; after an SSH launch, whether to offer the ssh config Include (it reads files)."""
        try:
            cpus = float(v.cpus) if v.cpus else None
        except ValueError:
            raise InvalidInput(f"CPUs {v.cpus!r} is not a number.", "Use e.g. 2 or 0.5.", field="cpus") from None
        if where == AUTO and self.choose is not None:
            self.post_message(Step("Choosing the workstation with the most free GPU capacity"))
            choice = self.choose(v.gpus or self.ws.config.gpus)
            where = choice.workstation
            self.post_message(Step(f"On {where}: {choice.reason}"))
        # Read by the screen only once this job is done (a build offer builds there, the row selected is there).
        self.ws = self.workstations.get(where, self.ws)
        spec = self.ws.make_spec(v.kind, name=v.name or None, owner=v.owner or None, image=v.image or None,
                                 gpus=v.gpus or None, workspace=v.workspace or None, memory=v.memory or None,
                                 cpus=cpus, shm_size=v.shm_size or None, queue=v.queue)
        launched = self.ws.launch(spec, lambda step: self.post_message(Step(step)))
        return launched, self.ws.ssh_include_offer() if launched.experiment.kind == "ssh" else None

    @on(Step)
    def _step(self, message: Step) -> None:
        self._steps.append(message.text)
        self._show_steps()

    def _show_steps(self, failed: str | None = None) -> None:
        text = Text()
        for i, step in enumerate(self._steps):
            last = i == len(self._steps) - 1
            mark, style = ("✗ ", "bold red") if last and failed else ("… ", "cyan") if last and self.busy \
                else ("✓ ", "green")
            text.append(mark, style=style).append(step + "\n")
        if failed:
            text.append(failed, style="red")
        self.query_one("#steps", Static).update(text)

    def _launch_failed(self, error: BaseException) -> None:
        self.busy = False
        cause, hint = describe(error)
        self._show_steps(failed=form_words(f"{cause}\n{hint or ''}".strip()))
        self._set_inputs(disabled=False)
        if isinstance(error, ImageMissing) and self._buildable():
            self._offer_build()
            return
        # Correct the field at fault and press Enter again: no Tab hunting, nothing selected to lose.
        field = self.query_one(f"#{field_at_fault(error)}", Input)
        field.focus()
        field.cursor_position = len(field.value)

    def _launched(self, outcome: tuple[Launched, SshConfigState | None]) -> None:
        launched, self.include_offer = outcome
        self.busy = False
        self.result, self._warnings, self._gpu_choice = launched.experiment, launched.warnings, launched.gpu_choice
        self._steps = self._steps[-1:]  # done: the last step says it; the result needs the room
        self._show_steps()
        self._show_result()
        # The fields did their work: the result (connect line, host key, buttons) takes their place,
        # so it fits on a small terminal without scrolling.
        for part in ("#fields", "#form-buttons"):
            self.query_one(part).display = False
        self.query_one("#result").display = True
        self.query_one("#result-buttons").display = True
        self.query_one("#copy", Button).focus()
        self.query_one("#launch", Button).disabled = True

    def _show_result(self) -> None:
        """The launched experiment: how to connect, its host key and GPUs, the launch's warnings."""
        experiment: Experiment = self.result  # type: ignore[assignment] - shown only once there is one
        if experiment.waiting is not None or experiment.status.startswith("queued"):
            lines = Text.assemble((f"{experiment.name} is {experiment.status}", "bold yellow"),
                                  f": {experiment.waiting or 'waiting for GPUs'}.\n",
                                  "It starts by itself when GPUs free; its row says when.")
        else:
            lines = Text.assemble((f"{experiment.name} is ready.\n", "bold green"))
        if experiment.access and experiment.status == "running":
            lines.append("Connect: ").append(experiment.access.connect, style="bold")
            if host_key := dict(experiment.access.rows).get("Host key"):
                lines.append(f"\nHost key: {host_key}")  # what to compare on first connect
        if experiment.gpus:
            lines.append(f"\nGPUs: {', '.join(map(str, experiment.gpus))}")
            if self._gpu_choice:
                lines.append(f" ({self._gpu_choice})")
        for warning in self._warnings:  # the launch's own words, as the CLI prints them
            lines.append(f"\nWarning: {warning}", style="bold yellow")
        if self.include_offer is not None:
            lines.append(f"\n`ssh {experiment.name}` from any terminal needs one line in "
                         f"{self.include_offer.user_config}: {self.include_offer.include}\nPress a to add it "
                         "(nothing else in that file changes; asked this once).", style="cyan")
            self.query_one("#include").display = True
        self.query_one("#result-text", Static).update(lines)

    def _set_inputs(self, disabled: bool) -> None:
        for widget in self.query_one("#fields").query("Input, Select, Checkbox"):
            widget.disabled = disabled
        self.query_one("#launch", Button).disabled = disabled

    # --- a missing image -------------------------------------------------------------------------
    def _buildable(self) -> bool:
        """Only ptdesk's own images can be built from here (a custom image is the user's business)."""
        return self.values().image in ("", self.ws.image_for(self.kind))

    def _offer_build(self) -> None:
        self.missing_image = self.ws.image_for(self.kind)
        self.query_one("#build-text", Static).update(Text(
            f"{self.missing_image} is not on this engine. Building it takes minutes and several GB: "
            "press b to build it (from the base below), escape to leave it."))
        self.query_one("#build-offer").display = True
        self.set_focus(None)  # b answers; Enter, with nothing focused, does nothing

    def action_build(self) -> None:
        if self.busy or not self.missing_image:
            return
        self.busy = True
        self.query_one("#build", Button).disabled = True
        log = self.query_one("#build-log", Log)
        log.display = True
        log.clear()
        kind, base = self.kind, self.query_one("#base", Input).value.strip() or None
        # The config's CA bundle and base image are used unless the person typed another base.
        run_job(self, lambda: self.ws.build_images([kind], base=base,
                                                   on_line=lambda line: self.post_message(BuildLine(line))),
                title=f"Building {self.missing_image}", group="build", on_done=self._built,
                on_error=self._build_failed)

    @on(BuildLine)
    def _build_line(self, message: BuildLine) -> None:
        self.query_one("#build-log", Log).write_line(message.text)

    def _build_failed(self, error: BaseException) -> None:
        self.busy = False
        self.query_one("#build", Button).disabled = False
        cause, hint = describe(error)
        self.query_one("#build-text", Static).update(Text(f"Build failed: {cause} {hint or ''}", style="red"))

    def _built(self, _results: object) -> None:
        self.busy = False
        self.query_one("#build", Button).disabled = False
        self.query_one("#build-offer").display = False
        self.missing_image = None
        # The image is there now: carry on with what the user asked for, where it was built
        # (an "auto" chosen again might pick another workstation).
        self.action_launch(where=self.ws.name)

    # --- closing -------------------------------------------------------------------------------
    def action_copy(self) -> None:
        if self.result and self.result.connect:
            self.app.copy_to_clipboard(self.result.connect)
            self.notify("Copied to the clipboard.")

    def action_add_include(self) -> None:
        if self.include_offer is None:
            return
        self.include_offer = None
        self.query_one("#include").display = False
        name, ws = self.result.name if self.result else "", self.ws

        def added(outcome: tuple[SshConfigState | None, Experiment]) -> None:
            state, self.result = outcome
            self._show_result()  # the short `ssh NAME` now, not the long line it replaces
            if state is not None:
                self.notify(f"Added to {state.user_config}: ssh NAME works for your experiments now.", markup=False)

        run_job(self, lambda: (ws.answer_ssh_include(True), ws.experiment(name)),
                title="Adding the ssh config Include", group="include", on_done=added)

    def action_close(self) -> None:
        if self.include_offer is not None:  # seen and not taken: the answer is no, and it is not asked again
            ws = self.ws
            self.app.run_worker(lambda: ws.answer_ssh_include(False), thread=True, exit_on_error=False,
                                group="include", name="ssh include: no")
        if self.busy:
            self.notify("Still working; it finishes in the background (the table shows it).",
                        severity="warning")
        self.dismiss(self.result)

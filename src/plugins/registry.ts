import { z } from 'zod';
import type { ToolSpec } from '../agent/llm.ts';
import type { PluginManifest } from './manifest.ts';
import type { AnyCommand, AnyTool, Availability, Caller, PluginDefinition } from './sdk.ts';

/** A plugin whose code loaded. `dir` is null for the built-in ones. */
export interface LoadedPlugin {
  readonly manifest: PluginManifest;
  readonly definition: PluginDefinition;
  readonly dir: string | null;
  /** Operator settings resolved from the environment and the manifest's defaults. */
  readonly settings: Readonly<Record<string, string>>;
}

/** A plugin that did not load, and why (shown by /plugins and logged). */
export interface PluginFailure {
  readonly name: string;
  readonly dir: string;
  readonly error: string;
}

export interface RegisteredTool {
  readonly plugin: LoadedPlugin;
  readonly tool: AnyTool;
  /** What the LLM is shown. */
  readonly spec: ToolSpec;
}

export interface RegisteredCommand {
  readonly plugin: LoadedPlugin;
  readonly command: AnyCommand;
}

/**
 * Every tool and command of the loaded plugins, and the rules of who may use which where. The same
 * check decides what the LLM is offered and whether a call is run, so the two never disagree.
 */
export class PluginRegistry {
  private readonly tools = new Map<string, RegisteredTool>();
  private readonly commands = new Map<string, RegisteredCommand>();
  /** The same, by name: sorted once, since the registry does not change after it is built. */
  private readonly sortedTools: readonly RegisteredTool[];
  private readonly sortedCommands: readonly RegisteredCommand[];
  /** What each kind of caller may use (see callerKind), worked out once per kind. */
  private readonly available = new Map<string, { tools: readonly RegisteredTool[]; commands: readonly RegisteredCommand[] }>();
  readonly plugins: LoadedPlugin[] = [];
  readonly failures: PluginFailure[];

  constructor(plugins: readonly LoadedPlugin[], failures: readonly PluginFailure[] = []) {
    this.failures = [...failures];
    for (const plugin of plugins) {
      const clash = this.clash(plugin);
      if (clash) {
        this.failures.push({ name: plugin.manifest.name, dir: plugin.dir ?? '(built in)', error: clash });
        continue;
      }
      this.plugins.push(plugin);
      for (const tool of plugin.definition.tools ?? []) this.tools.set(tool.name, { plugin, tool, spec: toolSpec(tool) });
      for (const command of plugin.definition.commands ?? []) this.commands.set(command.name, { plugin, command });
    }
    this.sortedTools = [...this.tools.values()].sort(byName((t) => t.tool.name));
    this.sortedCommands = [...this.commands.values()].sort(byName((c) => c.command.name));
  }

  tool(name: string): RegisteredTool | undefined {
    return this.tools.get(name);
  }

  command(name: string): RegisteredCommand | undefined {
    return this.commands.get(name);
  }

  /** The tools this caller may use here, by name. */
  toolsFor(caller: Caller): readonly RegisteredTool[] {
    return this.availableTo(caller).tools;
  }

  /** The commands this caller may use here, by name. */
  commandsFor(caller: Caller): readonly RegisteredCommand[] {
    return this.availableTo(caller).commands;
  }

  private availableTo(caller: Caller): { tools: readonly RegisteredTool[]; commands: readonly RegisteredCommand[] } {
    const kind = callerKind(caller);
    let found = this.available.get(kind);
    if (found === undefined) {
      found = {
        tools: this.sortedTools.filter((t) => refusal(t.plugin, t.tool, caller) === undefined),
        commands: this.sortedCommands.filter((c) => refusal(c.plugin, c.command, caller) === undefined),
      };
      // Kinds are few (platforms × chat types × admin or not); the bound only guards against surprises.
      if (this.available.size >= MAX_CALLER_KINDS) this.available.clear();
      this.available.set(kind, found);
    }
    return found;
  }

  /** Why this caller may not use the tool or command here; undefined when allowed. */
  refusal(plugin: LoadedPlugin, item: Availability, caller: Caller): string | undefined {
    return refusal(plugin, item, caller);
  }

  private clash(plugin: LoadedPlugin): string | undefined {
    for (const tool of plugin.definition.tools ?? []) {
      const other = this.tools.get(tool.name);
      if (other) return `tool ${tool.name} is already defined by plugin ${other.plugin.manifest.name}`;
    }
    for (const command of plugin.definition.commands ?? []) {
      const other = this.commands.get(command.name);
      if (other) return `command /${command.name} is already defined by plugin ${other.plugin.manifest.name}`;
    }
    return undefined;
  }
}

const MAX_CALLER_KINDS = 256;

/** The fields of a caller that refusal() reads: callers alike in these may use the same things. */
function callerKind(caller: Caller): string {
  return `${caller.platform}\n${caller.chatType}\n${caller.isAdmin}`;
}

function refusal(plugin: LoadedPlugin, item: Availability, caller: Caller): string | undefined {
  if (item.admin && !caller.isAdmin) return 'only administrators may use it';
  const scope = item.scope ?? 'any';
  if (scope !== 'any' && scope !== caller.chatType) return `it works only in ${scope} chats`;
  const platforms = item.platforms ?? plugin.manifest.platforms;
  if (platforms.length > 0 && !platforms.includes(caller.platform)) return `it is not available on ${caller.platform}`;
  return undefined;
}

function toolSpec(tool: AnyTool): ToolSpec {
  const { $schema: _ignored, ...parameters } = z.toJSONSchema(tool.args, { io: 'input', unrepresentable: 'any' }) as Record<
    string,
    unknown
  >;
  return { name: tool.name, description: tool.description, parameters };
}

function byName<T>(name: (item: T) => string): (a: T, b: T) => number {
  return (a, b) => name(a).localeCompare(name(b));
}
